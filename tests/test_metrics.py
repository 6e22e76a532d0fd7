"""Metrics against hand-computed values; NaN conventions; tensors vs arrays; clear shape errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from reprolib.metrics import (accuracy, average_precision, confusion_matrix, mean_average_precision,
                              per_class_accuracy)

# Four samples, three classes.
SCORES = np.array([[0.9, 0.1, 0.2],
                   [0.8, 0.7, 0.3],
                   [0.3, 0.6, 0.1],
                   [0.1, 0.2, 0.4]])
TARGETS = np.array([[1, 0, 0],
                    [0, 0, 0],
                    [1, 1, 0],
                    [0, 1, 0]])
# AP = sum over ranks n of (R_n - R_{n-1}) * P_n, ranking by decreasing score.
# class 0: order s0(+) s1(-) s2(+) s3(-)
#   rank 1: P = 1/1, R = 1/2   -> contributes 1/2 * 1
#   rank 2: P = 1/2, R = 1/2   -> contributes 0
#   rank 3: P = 2/3, R = 2/2   -> contributes 1/2 * 2/3
#   AP_0 = 1/2 + 1/3 = 5/6
# class 1: order s1(-) s2(+) s3(+) s0(-)
#   rank 1: P = 0,   R = 0     -> 0
#   rank 2: P = 1/2, R = 1/2   -> 1/2 * 1/2
#   rank 3: P = 2/3, R = 1     -> 1/2 * 2/3
#   AP_1 = 1/4 + 1/3 = 7/12
# class 2: no positive -> NaN (undefined); mAP = mean(5/6, 7/12) = 17/24
AP_BY_HAND = np.array([5 / 6, 7 / 12, np.nan])


def test_average_precision_matches_the_hand_computation():
    ap = average_precision(SCORES, TARGETS)
    assert ap.shape == (3,)
    np.testing.assert_allclose(ap[:2], AP_BY_HAND[:2], rtol=0, atol=1e-12)
    assert np.isnan(ap[2])
    assert mean_average_precision(SCORES, TARGETS) == pytest.approx(17 / 24, abs=1e-12)


def test_ap_is_invariant_to_monotone_transforms_of_the_scores():
    logits = np.log(SCORES / (1 - SCORES))  # sigmoid(logits) = SCORES
    np.testing.assert_allclose(average_precision(logits, TARGETS), AP_BY_HAND, equal_nan=True)


def test_tied_scores_and_all_positive_class():
    # class 0: tied pair, one positive: a single threshold at which P = 1/2, R = 1 -> AP = 1/2
    # class 1: every sample positive -> precision is 1 at every threshold -> AP = 1
    scores = np.array([[0.5, 0.2], [0.5, 0.9]])
    targets = np.array([[1, 1], [0, 1]])
    np.testing.assert_allclose(average_precision(scores, targets), [0.5, 1.0])


def test_no_positives_gives_nan_without_sklearn_warnings():
    targets = np.zeros((4, 3), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (sklearn's "No positive class found") fails the test
        ap = average_precision(SCORES, targets)
        m = mean_average_precision(SCORES, targets)
        average_precision(SCORES, TARGETS)
    assert np.all(np.isnan(ap)) and np.isnan(m)


def test_empty_split_gives_nan_map():
    assert np.isnan(mean_average_precision(np.zeros((0, 3)), np.zeros((0, 3))))


def test_tensors_and_arrays_agree():
    s_t = torch.tensor(SCORES, dtype=torch.float32, requires_grad=True)
    t_t = torch.tensor(TARGETS).bool()
    np.testing.assert_allclose(average_precision(s_t, t_t), AP_BY_HAND, equal_nan=True, rtol=1e-6)
    assert mean_average_precision(s_t.half(), t_t) == pytest.approx(17 / 24, abs=1e-6)
    assert mean_average_precision(SCORES.tolist(), TARGETS.tolist()) == pytest.approx(17 / 24)

    labels = np.array([0, 1, 1, 2])
    for scores in (SCORES, torch.tensor(SCORES), torch.tensor(SCORES).bfloat16()):
        for target in (labels, torch.tensor(labels)):
            assert accuracy(scores, target) == pytest.approx(3 / 4)  # arg-max = [0, 0, 1, 2]
            np.testing.assert_array_equal(confusion_matrix(scores, target, 3), confusion_matrix(
                SCORES, labels, 3))


def test_accuracy_on_scores_and_on_predictions():
    target = [0, 1, 1, 2]
    assert accuracy(SCORES, target) == 0.75
    assert accuracy(np.array([0, 1, 2, 2]), target) == 0.75
    assert accuracy(torch.tensor([0.0, 1.0, 1.0, 2.0]), target) == 1.0  # integer-valued floats are indices
    assert isinstance(accuracy(SCORES, target), float)


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    # true: 0 0 1 1 1 2 ; predicted: 0 1 1 1 0 1 ; class 3 never occurs
    true = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 1])
    cm = confusion_matrix(pred, true, num_classes=4)
    expected = np.array([[1, 1, 0, 0],
                         [1, 2, 0, 0],
                         [0, 1, 0, 0],
                         [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    pca = per_class_accuracy(cm)
    np.testing.assert_allclose(pca[:3], [1 / 2, 2 / 3, 0.0])
    assert np.isnan(pca[3])
    # rows are true classes: the row sums are the class counts
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(true, minlength=4))
    np.testing.assert_array_equal(confusion_matrix([], [], 2), np.zeros((2, 2), dtype=np.int64))


@pytest.mark.parametrize("call, message", [
    (lambda: average_precision(SCORES[:, 0], TARGETS[:, 0]), r"scores: expected shape \[N, K\], got \[4\]"),
    (lambda: average_precision(SCORES, TARGETS[:, 0]), r"targets: expected multi-hot shape \[N, K\], got \[4\]"),
    (lambda: average_precision(SCORES, TARGETS[:3]), r"same shape .* scores \[4, 3\] and targets \[3, 3\]"),
    (lambda: average_precision(SCORES, TARGETS * 2), r"multi-hot 0/1 matrix, found value\(s\) \[2\]"),
    (lambda: average_precision(np.where(TARGETS, np.nan, SCORES), TARGETS), r"scores: 4 non-finite"),
    (lambda: mean_average_precision(SCORES, TARGETS.T), r"same shape"),
    (lambda: accuracy(SCORES, [0, 1, 1]), r"4 predictions but 3 targets"),
    (lambda: accuracy(SCORES[None], [0, 1, 1, 2]), r"scores \[N, K\] or predictions \[N\], got shape \[1, 4, 3\]"),
    (lambda: accuracy(SCORES, np.eye(4)), r"target: expected class indices of shape \[N\], got shape \[4, 4\]"),
    (lambda: accuracy(np.array([0.5, 1.0]), [0, 1]), r"non-integer values"),
    (lambda: accuracy(np.zeros((0, 3)), []), r"no samples"),
    (lambda: confusion_matrix(SCORES, [0, 1, 1, 2], num_classes=4), r"3 columns but num_classes=4"),
    (lambda: confusion_matrix([0, 5], [0, 1], num_classes=3), r"predictions hold class index 5 outside \[0, 3\)"),
    (lambda: confusion_matrix([0, 1], [0, -1], num_classes=3), r"target hold class index -1"),
    (lambda: confusion_matrix([0, 1], [0, 1], num_classes=0), r"num_classes must be a positive integer"),
    (lambda: per_class_accuracy(np.zeros((2, 3))), r"square confusion matrix \[K, K\], got shape \[2, 3\]"),
])
def test_bad_input_gives_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- the numpy metrics against scikit-learn


def test_numpy_metrics_equal_scikit_learn_bit_for_bit():
    """AP, weighted and binary F1 and the confusion matrix are computed in numpy (scikit-learn costs a
    kernel ~2 s to import); on random inputs with ties, one-class splits and empty predictions they
    give scikit-learn's numbers exactly."""
    from sklearn.metrics import average_precision_score, f1_score
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    from reprolib.metrics import _binary_average_precision, _binary_f1, _weighted_f1

    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(1, 40))
        truth, pred = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        score = np.round(rng.normal(size=n), int(rng.integers(0, 3))).astype(np.float32)  # rounding makes ties
        if truth.any():
            assert _binary_average_precision(truth, score) == average_precision_score(truth, score)
        assert _weighted_f1(truth, pred) == f1_score(truth, pred, average="weighted", zero_division=0)
        assert _binary_f1(truth, pred) == f1_score(truth, pred, average="binary", zero_division=0)
        k = int(rng.integers(2, 6))
        true_cls, pred_cls = rng.integers(0, k, n), rng.integers(0, k, n)
        np.testing.assert_array_equal(confusion_matrix(pred_cls, true_cls, k),
                                      sk_confusion_matrix(true_cls, pred_cls, labels=np.arange(k)))
