"""The multi-seed sweep: argument checks and the summary table (the training itself is the notebooks')."""

from __future__ import annotations

import pytest

from reprolib import sweeps
from reprolib.__main__ import main


def test_summarise_gives_sample_std():
    s = sweeps.summarise([0.5, 0.7, 0.6])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1) and s["n"] == 3
    assert sweeps.summarise([0.4])["std"] == 0.0


def test_format_table_reads_mean_and_std():
    row = {"dataset": "caer_s", "metric": "accuracy",
           **{k: {"mean": m, "std": 0.01, "n": 3} for k, m in (("test", 0.9), ("test_ood", 0.2), ("gap", 0.7))}}
    text = sweeps.format_table({"caernet": row})
    assert "| caernet | caer_s (accuracy) | 0.900 ± 0.010 | 0.200 ± 0.010 | 0.700 ± 0.010 | 3 |" in text


def test_every_baseline_has_a_home_dataset():
    assert set(sweeps._baselines("medium")) == {"emotnet", "caernet", "gnncnn", "cdnet", "emoticon"}
    assert {kind for kind, _ in sweeps._baselines("medium").values()} == {"caer_s", "emotic"}


def test_bad_arguments_are_refused(capsys):
    assert main(["sweep", "--only", "resnet"]) == 2
    assert "unknown baseline" in capsys.readouterr().err
    with pytest.raises(ValueError, match="size must be one of"):
        sweeps.sweep_baselines("huge")
