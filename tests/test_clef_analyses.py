"""Notebook 09's analyses of a trained CLEF model (reprolib.experiments): the per-class decomposition
and the decision measures, on hand-made arrays whose answers are known."""

import numpy as np
import torch

from reprolib import experiments


def test_clef_decomposition_averages_each_class_over_its_two_groups():
    # 3 images, 2 classes; image 0: label 0, scene suggests 1; image 1: label 1, scene suggests 1;
    # image 2: label 1, scene suggests 0
    targets = np.array([0, 1, 1])
    suggestions = np.array([[False, True], [False, True], [True, False]])
    scores = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    outs = {"fused": scores, "counterfactual": scores * 10, "tie": -scores}
    panels = experiments.clef_decomposition(outs, targets, suggestions, multilabel=False)
    shortcut, carried = (panels[g] for g in experiments.DECOMPOSITION_GROUPS)
    # class 0 is suggested but not a label on image 2 only; class 1 on image 0 only
    np.testing.assert_allclose(shortcut["fused Y_ce"], [5.0, 2.0])
    np.testing.assert_allclose(shortcut["counterfactual Y_ce*"], [50.0, 20.0])
    # class 0 is a label with another suggestion on image 0; class 1 on image 2
    np.testing.assert_allclose(carried["TIE"], [-1.0, -6.0])


def test_clef_decomposition_marks_an_empty_group_nan():
    targets = np.array([[1, 0], [1, 0]])  # multi-label: class 1 is never a label
    suggestions = np.array([[True, False], [True, False]])
    outs = {k: torch.ones(2, 2) for k in ("fused", "counterfactual", "tie")}
    panels = experiments.clef_decomposition(outs, targets, suggestions, multilabel=True)
    assert np.isnan(panels[experiments.DECOMPOSITION_GROUPS[0]]["TIE"]).all()  # every suggestion is a label


def test_decision_measures_counts_the_shortcut_and_the_cue():
    labels = np.array([0, 1, 2, 3])
    suggested = np.array([1, 1, 0, 0])          # misleading on images 0, 2, 3
    predictions = np.array([1, 1, 2, 0])        # follows the scene on images 0 and 3
    cue = np.array([True, True, False, False])
    m = experiments.decision_measures(predictions, labels, suggested, cue)
    assert m["accuracy"] == 0.5
    assert abs(m["shortcut_rate"] - 2 / 3) < 1e-12
    assert m["with_cue"] == 0.5 and m["without_cue"] == 0.5
