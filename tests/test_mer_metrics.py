"""IEMOCAP and MOSEI metrics (MulT / CausalMER semantics) against hand-computed values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from reprolib.metrics import iemocap_metrics, iemocap_predictions, mosei_metrics

# ------------------------------------------------------------------------------------------ IEMOCAP
# Four samples; columns are Neutral, Happy, Sad, Angry (1 = present).
TRUTH = np.array([[1, 0, 0, 0],
                  [0, 1, 0, 0],
                  [0, 0, 1, 0],
                  [1, 0, 0, 0]])
PRED = np.array([[1, 0, 0, 0],
                 [0, 0, 0, 0],
                 [0, 0, 1, 1],
                 [0, 0, 0, 0]])
# Neutral: truth 1 0 0 1, pred 1 0 0 0 -> acc 3/4.
#   present: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3 (support 2)
#   absent:  tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 4/5 (support 2)
#   weighted F1 = (2 * 2/3 + 2 * 4/5) / 4 = (10/15 + 12/15) / 2 = 11/15
# Happy: truth 0 1 0 0, pred 0 0 0 0 -> acc 3/4.
#   present: never predicted -> F1 0 (support 1)
#   absent:  tp 3, fp 1, fn 0 -> P 3/4, R 1, F1 = 2 * 3/4 / (7/4) = 6/7 (support 3)
#   weighted F1 = 3/4 * 6/7 = 9/14
# Sad: identical -> acc 1, F1 1.
# Angry: truth 0 0 0 0, pred 0 0 1 0 -> acc 3/4.
#   present: support 0 -> weight 0
#   absent:  tp 3, fp 0, fn 1 -> P 1, R 3/4, F1 6/7 (support 4) -> weighted F1 = 6/7
# mean_acc = (3/4 + 3/4 + 1 + 3/4) / 4 = 13/16
# mean_f1  = (11/15 + 9/14 + 1 + 6/7) / 4 = (154 + 135 + 210 + 180) / 210 / 4 = 679/840
IEMOCAP_BY_HAND = {
    "acc_neutral": 3 / 4, "f1_neutral": 11 / 15,
    "acc_happy": 3 / 4, "f1_happy": 9 / 14,
    "acc_sad": 1.0, "f1_sad": 1.0,
    "acc_angry": 3 / 4, "f1_angry": 6 / 7,
    "mean_acc": 13 / 16, "mean_f1": 679 / 840,
}


def _pairs(pred: np.ndarray) -> np.ndarray:
    """[N, 4] presence -> [N, 4, 2] scores (absent, present) whose arg-max is ``pred``."""
    return np.stack([np.where(pred == 1, 0.2, 0.9), np.where(pred == 1, 0.7, -0.3)], axis=-1)


def test_iemocap_metrics_match_the_hand_computation():
    out = iemocap_metrics(_pairs(PRED), TRUTH)
    assert set(out) == set(IEMOCAP_BY_HAND)
    for key, value in IEMOCAP_BY_HAND.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
        assert type(out[key]) is float


def test_iemocap_accepts_every_score_and_truth_layout():
    onehot_truth = np.stack([1 - TRUTH, TRUTH], axis=-1)  # the file's [N, 4, 2] layout
    logits = np.where(PRED == 1, 2.0, -1.5)                  # one logit per emotion
    probs = np.where(PRED == 1, 0.8, 0.3)                    # sigmoid probabilities
    variants = [
        iemocap_metrics(torch.tensor(_pairs(PRED)), torch.tensor(TRUTH, dtype=torch.float32)),
        iemocap_metrics(_pairs(PRED).reshape(4, 8), onehot_truth),   # MulT's [N, 8] output
        iemocap_metrics(logits, TRUTH),
        iemocap_metrics(PRED, TRUTH),                                 # hard 0/1 predictions
        iemocap_metrics(probs, TRUTH, threshold=0.5),
    ]
    for out in variants:
        assert out == pytest.approx(IEMOCAP_BY_HAND)


def test_iemocap_pair_tie_goes_to_absent_and_bad_shapes_fail():
    # arg-max of a tied pair is index 0 = absent, as in the reference code
    assert iemocap_predictions(np.full((1, 4, 2), 0.5)).tolist() == [[0, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"\[N, 4, 2\], \[N, 8\] or \[N, 4\]"):
        iemocap_metrics(np.zeros((4, 6)), TRUTH)
    with pytest.raises(ValueError, match="0/1 presence"):
        iemocap_metrics(PRED, TRUTH * 2)
    with pytest.raises(ValueError, match="predictions for 3 samples"):
        iemocap_metrics(PRED[:3], TRUTH)
    with pytest.raises(ValueError, match="non-finite"):
        iemocap_metrics(np.full((4, 4), np.nan), TRUTH)


# ------------------------------------------------------------------------------------------ MOSEI
Y = np.array([-2.0, -0.4, 0.0, 0.6, 2.4])
P = np.array([-1.6, 0.3, -0.2, 1.4, 3.5])
# acc7: round(clip(p, -3, 3)) = -2, 0, -0, 1, 3 ; round(clip(y, -3, 3)) = -2, -0, 0, 1, 2 -> 4 of 5 = 0.8
# acc5: round(clip(p, -2, 2)) = -2, 0, -0, 1, 2 ; round(clip(y, -2, 2)) = -2, -0, 0, 1, 2 -> 5 of 5 = 1.0
# non-negative: y >= 0 = F F T T T ; p >= 0 = F T F T T -> agree on s0, s3, s4 -> acc2_nonneg = 3/5
#   class T: tp 2 (s3, s4), fp 1 (s1), fn 1 (s2) -> P 2/3, R 2/3, F1 2/3 (support 3)
#   class F: tp 1 (s0),     fp 1 (s2), fn 1 (s1) -> P 1/2, R 1/2, F1 1/2 (support 2)
#   f1_nonneg = (3 * 2/3 + 2 * 1/2) / 5 = 3/5 ; f1_binary_nonneg = F1 of class T = 2/3
# non-zero truths: s0, s1, s3, s4 (s2 has y = 0): y > 0 = F F T T ; p > 0 = F T T T -> acc2_nonzero = 3/4
#   class T: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 4/5 (support 2)
#   class F: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3 (support 2)
#   f1_nonzero = (4/5 + 2/3) / 2 = 11/15 ; f1_binary_nonzero = 4/5
# mae: |p - y| = 0.4, 0.7, 0.2, 0.8, 1.1 -> 3.2 / 5 = 0.64
# corr: mean p = 3.4 / 5 = 0.68, mean y = 0.6 / 5 = 0.12
#   dp = -2.28, -0.38, -0.88, 0.72, 2.82 ; dy = -2.12, -0.52, -0.12, 0.48, 2.28
#   sum dp*dy = 4.8336 + 0.1976 + 0.1056 + 0.3456 + 6.4296 = 11.912
#   sum dp^2  = 5.1984 + 0.1444 + 0.7744 + 0.5184 + 7.9524 = 14.588
#   sum dy^2  = 4.4944 + 0.2704 + 0.0144 + 0.2304 + 5.1984 = 10.208
#   corr = 11.912 / sqrt(14.588 * 10.208) ~= 0.97615
MOSEI_BY_HAND = {
    "acc7": 0.8, "acc5": 1.0,
    "acc2_nonneg": 3 / 5, "f1_nonneg": 3 / 5, "f1_binary_nonneg": 2 / 3,
    "acc2_nonzero": 3 / 4, "f1_nonzero": 11 / 15, "f1_binary_nonzero": 4 / 5,
    "mae": 0.64, "corr": 11.912 / np.sqrt(14.588 * 10.208),
    "n": 5, "n_nonzero": 4,
}


def test_mosei_metrics_match_the_hand_computation():
    out = mosei_metrics(P, Y)
    assert set(out) == set(MOSEI_BY_HAND)
    for key, value in MOSEI_BY_HAND.items():
        assert out[key] == pytest.approx(value, abs=1e-9), key
    assert out["corr"] == pytest.approx(0.97615, abs=1e-5)
    assert all(type(v) in (float, int) for v in out.values())


def test_mosei_accepts_the_file_and_model_layouts():
    a = mosei_metrics(torch.tensor(P, dtype=torch.float64).reshape(5, 1), Y.reshape(5, 1, 1))
    assert a == pytest.approx(MOSEI_BY_HAND)


def test_mosei_rounding_is_half_to_even():
    # np.round: 0.5 -> 0, 2.5 -> 2, -0.5 -> -0, -2.5 -> -2; so these all match their truths
    out = mosei_metrics([0.5, 2.5, -0.5, -2.5], [0.0, 2.0, 0.0, -2.0])
    assert out["acc7"] == 1.0


def test_mosei_seven_class_scores_use_argmax_minus_three():
    scores = np.zeros((3, 7))
    scores[[0, 1, 2], [1, 3, 4]] = 1.0  # argmax 1, 3, 4 -> predictions -2, 0, 1
    out = mosei_metrics(scores, [-2.0, 0.4, 1.0])
    # acc7: round(y) = -2, 0, 1 -> 3 of 3
    # acc2_nonzero (all y non-zero): y > 0 = F T T ; class rule p >= 0 (argmax >= 3) = F T T -> 1.0
    # (the regression rule p > 0 would give F F T, 2/3)
    assert out["acc7"] == 1.0 and out["acc2_nonzero"] == 1.0
    assert out["mae"] == pytest.approx((0 + 0.4 + 0) / 3)
    assert mosei_metrics([-2.0, 0.0, 1.0], [-2.0, 0.4, 1.0])["acc2_nonzero"] == pytest.approx(2 / 3)


def test_mosei_undefined_values_are_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = mosei_metrics([0.5, -0.5, 1.0], [0.0, 0.0, 0.0])  # every truth is zero
        assert np.isnan(out["acc2_nonzero"]) and np.isnan(out["f1_nonzero"]) and out["n_nonzero"] == 0
        assert np.isnan(out["corr"])  # constant truths
        assert np.isnan(mosei_metrics([1.0, 1.0], [1.0, -1.0])["corr"])  # constant predictions


def test_mosei_bad_input_fails_clearly():
    with pytest.raises(ValueError, match="4 predictions but 5 truths"):
        mosei_metrics(P[:4], Y)
    with pytest.raises(ValueError, match="non-finite"):
        mosei_metrics([np.nan] * 5, Y)
    with pytest.raises(ValueError, match="expected sentiment values"):
        mosei_metrics(np.zeros((5, 2)), Y)
    with pytest.raises(ValueError, match="no samples"):
        mosei_metrics([], [])
