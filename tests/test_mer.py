"""reprolib.mer: the MulT vs CausalMER code path shared by notebook 10 and its sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolib import experiments, mer
from reprolib.__main__ import main

TINY = {"sizes": {"train": 40, "valid": 16, "test": 24}, "dims": {"text": 8, "audio": 6, "vision": 5}, "lengths": 6}
TINY_MULT = dict(d=4, num_heads=2, layers=1, kernel_sizes=(1, 1, 1))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path))
    return tmp_path


def test_shortcut_strength_follows_the_bias_knobs(data_dir):
    # the cue is observed through feature noise, so a clean shortcut (bias 1) needs some strength to read 1
    d = experiments.open_mult("iemocap", synthetic_knobs={**TINY, "bias": 1.0, "test_bias": 0.0, "shortcut_strength": 4.0})
    assert mer.shortcut_strength(d, "train") == 1.0 and mer.shortcut_strength(d, "val") == 1.0
    assert mer.shortcut_strength(d, "test") < 0.6
    m = experiments.open_mult("mosei", synthetic_knobs={**TINY, "bias": 0.95})
    assert mer.shortcut_strength(m, "train") > 0.8
    real = experiments.open_mult("mosei", data_root=m.root)  # the same file read as real data: no known shortcut
    assert mer.shortcut_cue(real, "train") is None and mer.shortcut_strength(real, "train") is None


def test_shortcut_following_tells_cue_from_label(data_dir):
    d = experiments.open_mult("iemocap", synthetic_knobs={**TINY, "test_bias": 0.0, "shortcut_strength": 4.0})
    cue, y = mer.shortcut_cue(d, "test")
    as_scores = lambda picks: torch.from_numpy(np.stack([-picks, picks], axis=-1).reshape(len(picks), 8) * 1.0)
    follow_cue = mer.shortcut_following(d, as_scores(np.eye(4)[cue.argmax(1)]))
    follow_label = mer.shortcut_following(d, as_scores(y))
    assert follow_cue["shortcut"] == 1.0 and follow_label["label"] == 1.0
    assert follow_cue["label"] == follow_label["shortcut"] == float((cue.argmax(1) == y.argmax(1)).mean())
    m = experiments.open_mult("mosei", synthetic_knobs=TINY)
    cue, y = mer.shortcut_cue(m, "train")
    got = mer.shortcut_following(m, torch.from_numpy(2 * cue + 1), split="train")
    assert got["shortcut"] == pytest.approx(1.0) and got["label"] == pytest.approx(np.corrcoef(cue[:, 0], y)[0, 1])


def test_evaluate_gives_the_study_and_causalmer_diagnostics(data_dir):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    build = mer.builders(d, "smoke", mult=TINY_MULT, branch_widths=(4, 4))
    records = {}
    for name in mer.MODELS:
        run = mer.train(d, name, build[name], seed=0, epochs=1, batch_size=8)
        records[name] = rec = mer.evaluate(run, d)
        assert rec["test"] == run.scores["test"] == pytest.approx(rec["metrics"]["mean_acc"])
        assert len(rec["study"]["scenarios"]) == 7 and rec["study"]["full"] == pytest.approx(rec["test"])
        assert set(rec["drop_share"]) == {"text", "audio", "vision"} and set(rec["follows"]) == {"shortcut", "label"}
    assert "causalmer" not in records["mult"]
    diag = records["causalmer"]["causalmer"]
    assert diag["scores"]["tie"] == pytest.approx(records["causalmer"]["test"])
    assert set(diag["scores"]) == set(diag["follows"]) == {"tie", "z_fact", "mult_branch", "text_branch", "audio_branch",
                                                           "vision_branch"}
    assert diag["relative_correction"] > 0  # the constants moved off 0 in training, so TIE != Z_fact

    with torch.no_grad():  # constants at 0: every counterfactual is 0 under mask fusion, TIE = Z_fact
        for c in run.model.constants():
            c.zero_()
    zero = mer.causalmer_diagnostics(run.model, d)
    assert zero["relative_correction"] == 0.0 and zero["scores"]["tie"] == zero["scores"]["z_fact"]


def test_format_table_reads_mean_and_std():
    cell = {"mean": 0.5, "std": 0.01, "n": 3}
    table = {"mosei": {"metric": "acc7", "chance": 0.3, "variants": {
        "mult": {k: cell for k in mer.SWEEP_COLUMNS}, "causalmer": {k: cell for k in mer.SWEEP_COLUMNS}}}}
    lines = mer.format_table(table).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| mosei (acc7) | 0.300 | mult | 0.500 ± 0.010")


def test_bad_sweep_requests_are_refused(capsys):
    with pytest.raises(ValueError, match="size"):
        mer.sweep("huge")
    with pytest.raises(ValueError, match="unknown dataset"):
        mer.sweep("smoke", datasets=["mosi"])
    assert main(["sweep", "--method", "causalmer", "--only", "mosi"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


# --------------------------------------------------------------------------- training recipes


def test_recipes_are_the_parameter_choices_and_official_is_the_paper_loop():
    from reprolib import parameters

    assert tuple(mer.RECIPES) == parameters.RECIPES and mer.DEFAULT_RECIPE == "official"
    official = mer.RECIPES["official"]
    assert official["fit"] == {"weight_decay": 0.0, "clip_grad_norm": 0.8, "plateau_patience": 20, "lr_gamma": 0.1}
    assert official["mult"] == {"causal_mask": True} and mer.RECIPES["engine"]["mult"] == {"causal_mask": False}
    with pytest.raises(ValueError, match="recipe must be one of"):
        mer.recipe_of("paper")


def test_the_recipe_reaches_the_model_and_the_training_loop(data_dir, monkeypatch):
    data = mer.open_data("iemocap", "smoke")
    seen = {}

    def fake_train_and_score(build, data, seed=0, checkpoint_dir=None, **kwargs):
        seen.update(kwargs)
        return build()

    monkeypatch.setattr(experiments, "train_and_score", fake_train_and_score)
    for recipe, masked in (("official", True), ("engine", False)):
        seen.clear()
        build = mer.builders(data, "smoke", recipe=recipe)
        model = mer.train(data, "causalmer", build["causalmer"], size="smoke", recipe=recipe, lr=5e-4)
        assert model.backbone.causal_mask is masked and build["mult"]().causal_mask is masked
        assert {k: seen[k] for k in mer.RECIPES[recipe]["fit"]} == mer.RECIPES[recipe]["fit"]
        assert seen["lr"] == 5e-4  # an override wins over the size preset
    # the constants take no decay: a group of their own with weight_decay 0
    from reprolib.engine import without_decay

    groups = without_decay(model, [p for p in model.parameters() if p.requires_grad])
    assert [len(g["params"]) for g in groups if g.get("weight_decay") == 0.0] == [3]
