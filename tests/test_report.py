"""reprolib.report: the run texts of notebooks 08-10, on inputs shaped like theirs.

The synthetic-data path runs under nbval on every notebook; these tests hold what nbval does not see:
real data (no test_ood, so no gap) says n/a instead of failing or printing a made-up number, and a
missing sweep file says which command writes it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from reprolib import report, sweeps


def _data(kind, synthetic, metric="accuracy"):
    return {kind: SimpleNamespace(synthetic=synthetic, metric_name=metric, chance=lambda split="test": 0.25)}


CFG = SimpleNamespace(size="smoke", epochs=3, lr=0.003, batch_size=16)


def _row(test, test_ood=None):
    return {"test": test, "test_ood": test_ood, "gap": None if test_ood is None else test - test_ood}


def test_formatting_marks_what_was_not_measured():
    assert report.fmt(0.1234) == "0.12" and report.fmt(0.1234, 3, sign=True) == "+0.123"
    assert report.fmt(None) == "n/a" and report.fmt(float("nan")) == "n/a"
    assert report.fmt(None, missing="undefined") == "undefined"
    assert report.minus(0.5, None) is None and report.minus(0.5, 0.25) == 0.25
    assert report.ratio(1.0, 0) is None and report.ratio(None, 2) is None and report.ratio(1.0, 4) == 0.25
    assert report.paired({"mean": 0.01, "std": 0.002}) == "+0.010 ± 0.002"
    assert report.escape("Y_e*") == "Y_e\\*"


def _ccim_inputs(synthetic):
    ood = 0.3 if synthetic else None
    scores = {"emotnet": {v: _row(0.5, ood) for v in ("baseline", "dot_product", "additive")}}
    diagnostics = {"emotnet dot_product": {"g_share": 0.05, "entropy": 0.99},
                   "emotnet additive": {"g_share": 0.04, "entropy": 0.5}}
    ablation = {"N=16, shares (main)": {**_row(0.5, ood), "g_share": 0.05, "entropy": 0.99},
                "N=8, shares": {**_row(0.45, ood), "g_share": 0.06, "entropy": 0.98},
                "N=16, relative, dot_product": {**_row(0.4, ood), "g_share": 0.2, "entropy": 0.9}}
    return dict(seed=0, cfg=CFG, data=_data("emotic", synthetic, "mAP"), variants=("baseline", "dot_product", "additive"),
                scores=scores, diagnostics=diagnostics, ablation=ablation, main_key="N=16, shares (main)",
                ablated="emotnet", ablation_kind="emotic", base=_row(0.5, ood), dictionary_size=16,
                own_share={"indoor": 0.5} if synthetic else {}, attention_maps={"test": np.eye(4)[[0, 0, 1, 1, 1, 2]]},
                row_label="scene", exact_scores=_row(0.6, 0.55 if synthetic else None))


def test_ccim_run_on_synthetic_data_states_the_gap_kept_and_the_exact_adjustment():
    text = report.ccim_run(**_ccim_inputs(synthetic=True))
    assert "synthetic data" in text and "| EMOT-Net | + CCIM, dot product | 0.50 | 0.30 | 0.20 | 0.050 | 0.99 |" in text
    assert "**Gap kept with CCIM**" in text and "1.00 (dot product)" in text
    assert "prototypes 1, 0, 2 take 1.00 of it" in text and "prototype 1 is the most attended in 3 of those rows" in text
    assert "test_ood +0.25 against EMOT-Net without CCIM" in text
    assert "in 1 of them (emotnet dot_product)." in text  # entropy >= 0.95 of log N


def test_ccim_run_on_real_data_says_n_a_and_states_no_gap():
    text = report.ccim_run(**_ccim_inputs(synthetic=False))
    assert "real data" in text and "| EMOT-Net | without CCIM | 0.50 | n/a | n/a |" in text
    assert "Gap kept" not in text and "N and prior" not in text
    assert "test 0.60 against 0.50 for EMOT-Net without CCIM" in text


def _clef_inputs(synthetic):
    ood = 0.4 if synthetic else None
    scores = {"caernet": {"baseline": _row(0.9, 0.2 if synthetic else None), "clef": _row(0.8, ood)},
              "emotnet": {"baseline": _row(0.3, 0.1 if synthetic else None),
                          sweeps.OWN_LOSS_CONTROL: _row(0.35, 0.3 if synthetic else None), "clef": _row(0.4, ood)}}
    rules = {"baseline": {"shortcut_rate": 0.8, "gain": 0.01, "with_cue": 0.5, "without_cue": 0.49},
             "CLEF TIE": {"shortcut_rate": 0.1, "gain": -0.02, "with_cue": 0.6, "without_cue": 0.62}}
    decomposition = {"caernet": {report.SUGGESTED: {"fused Y_ce": 0.7, "TIE": 0.1},
                                 report.TRUE: {"fused Y_ce": 0.2, "TIE": 0.5}}}
    ablation = {report.MAIN_ABLATION: {**_row(0.8, ood), "shortcut_rate": 0.1, "y_e_star_spread": 0.01},
                "no_kl": {**_row(0.7, ood), "y_e_star_spread": 0.02}}
    data = {**_data("caer_s", synthetic), **_data("emotic", synthetic, "mAP")}
    return dict(seed=1, cfg=CFG, data=data, kind_of={"caernet": "caer_s", "emotnet": "emotic"}, scores=scores,
                subject_only={"caer_s": _row(0.7, 0.6 if synthetic else None), "emotic": _row(0.2, 0.2 if synthetic else None)},
                ablated="caernet", base=scores["caernet"]["baseline"], ablation=ablation,
                decisions={"caernet": rules} if synthetic else {}, decomposition=decomposition if synthetic else {},
                cues={"caernet": np.array([True, False, False, True])})


def test_clef_run_on_synthetic_data_compares_with_the_default_loss_control():
    text = report.clef_run(**_clef_inputs(synthetic=True))
    assert "| EMOT-Net (default loss) | 0.35 | 0.30 | 0.05 |" in text and "| subject only (caer_s) | 0.70 | 0.60 | 0.10 |" in text
    assert "the default-loss control reaches 0.30, CLEF +0.10 over it" in text
    assert "TIE / baseline: 0.12." in text  # 0.1 / 0.8
    assert "The fused score is higher at the suggested class, TIE is higher at the true class." in text
    assert "(4 images, 2 with a cue;" in text
    assert "Y_e\\*" in text and "Y_e*" not in text.replace("Y_e\\*", "")  # escaped for Markdown everywhere


def test_clef_run_on_real_data_says_n_a():
    text = report.clef_run(**_clef_inputs(synthetic=False))
    assert "real data" in text and "| CAER-Net-S + CLEF | 0.80 | n/a | n/a |" in text
    assert "Subject only against CLEF" not in text and "control reaches" not in text


@pytest.mark.parametrize("render, command", [
    (lambda: report.ccim_sweep("no_such_sweep.json"), "--method ccim"),
    (lambda: report.clef_sweep("no_such_sweep.json"), "--method clef"),
    (lambda: report.causalmer_sweep({"mult": "MulT", "causalmer": "MulT+CausalMER"}, "no_such_sweep.json"),
     "--method causalmer")])
def test_a_missing_sweep_names_the_command_that_writes_it(render, command):
    text = render()
    assert "no_such_sweep.json" in text and f"python -m reprolib sweep {command}" in text


def test_the_committed_sweeps_render_their_headline_rows():
    assert "CCIM minus the baseline, paired by seed" in report.ccim_sweep()
    assert "CLEF minus the baseline and minus the default-loss control" in report.clef_sweep()
    assert "CausalMER's mean std of drops is" in report.causalmer_sweep({"mult": "MulT", "causalmer": "MulT+CausalMER"})
