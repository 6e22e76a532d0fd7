"""Evaluation metrics: top-1 accuracy (CAER-S), per-class AP and mAP (EMOTIC, GroupWalk), confusion matrices, and the multimodal ones (IEMOCAP per-emotion accuracy and F1; MOSEI acc7, acc2, F1, MAE, correlation).

Every function accepts torch tensors (any device, with or without grad) or numpy arrays / nested lists,
and returns plain Python floats or numpy arrays, so results go straight into a metrics JSON.

Conventions, fixed here once for the whole repo:

* **accuracy** takes either scores ``[N, K]`` (the prediction is the arg-max over K) or predictions
  ``[N]`` (integer class indices) against integer targets ``[N]``.
* **average precision** is scikit-learn's ``average_precision_score`` per class, on raw scores (any
  monotone transform of the scores, e.g. a sigmoid, gives the same AP), computed here in numpy the way
  scikit-learn does (the tests compare the two): importing scikit-learn costs a kernel about 2 s. This is the EMOTIC protocol of
  the PyTorch reference implementations; the official MATLAB ``demoComputeAP`` interpolates
  differently and can differ slightly.
* **a class with no positive sample has AP = NaN**: precision and recall are undefined for it (recall
  divides by the number of positives), so there is no AP to report. scikit-learn would warn and return
  a degenerate value there; we never call it for such a class, so no warning is emitted.
* **mAP is the mean over the classes that have at least one positive** (NaN when none has). On the
  full EMOTIC test split every class has positives and this is the usual mean over 26 classes; on
  small splits and test fixtures, where some classes may be absent, it stays well defined instead of
  being dragged to NaN (or to a meaningless value) by classes that cannot be scored. Which classes
  were scored can be read off ``np.isfinite(average_precision(...))``.
* **confusion matrix**: rows are true classes, columns predicted classes, all ``num_classes`` labels
  present even when unused; **per-class accuracy** (recall) is NaN for a class with no samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reprolib.data.mult import IEMOCAP_EMOTIONS  # the loader owns the format facts

__all__ = ["accuracy", "average_precision", "mean_average_precision", "confusion_matrix",
           "per_class_accuracy", "iemocap_predictions", "iemocap_metrics", "mosei_metrics"]


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy view of a tensor / array / list; half-precision tensors become float32 first."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a torch tensor or an array-like, got {type(x).__name__}") from exc


def _shape(a: np.ndarray) -> str:
    return "[" + ", ".join(str(s) for s in a.shape) + "]"


def _class_indices(a: np.ndarray, name: str) -> np.ndarray:
    """Check that a 1-D array holds integer class indices and return it as int64."""
    if a.ndim != 1:
        raise ValueError(f"{name}: expected class indices of shape [N], got shape {_shape(a)}")
    if a.dtype == bool:
        return a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{name}: expected integer class indices, got dtype {a.dtype}")
        if a.size and not (np.all(np.isfinite(a)) and np.all(a == np.round(a))):
            raise ValueError(f"{name}: expected integer class indices, got non-integer values "
                             f"(pass scores as [N, K] to take the arg-max)")
    return a.astype(np.int64)


def _predictions(pred_or_scores: Any, name: str = "pred_or_scores") -> np.ndarray:
    """[N, K] scores -> arg-max predictions [N]; [N] predictions pass through (checked)."""
    a = _as_numpy(pred_or_scores, name)
    if a.ndim == 2:
        if a.shape[1] == 0:
            raise ValueError(f"{name}: scores of shape {_shape(a)} have no classes")
        return a.argmax(axis=1).astype(np.int64)
    if a.ndim == 1:
        return _class_indices(a, name)
    raise ValueError(f"{name}: expected scores [N, K] or predictions [N], got shape {_shape(a)}")


def accuracy(logits_or_pred: Any, target: Any) -> float:
    """Top-1 accuracy in [0, 1].

    ``logits_or_pred``: scores ``[N, K]`` (arg-max taken) or predicted class indices ``[N]``;
    ``target``: true class indices ``[N]``. An empty input is an error (accuracy is undefined).
    """
    pred = _predictions(logits_or_pred, "logits_or_pred")
    true = _class_indices(_as_numpy(target, "target"), "target")
    if len(pred) != len(true):
        raise ValueError(f"accuracy: {len(pred)} predictions but {len(true)} targets")
    if len(true) == 0:
        raise ValueError("accuracy: no samples (accuracy of an empty set is undefined)")
    return float(np.mean(pred == true))


def _scores_and_targets(scores: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _as_numpy(scores, "scores")
    t = _as_numpy(targets, "targets")
    if s.ndim != 2:
        raise ValueError(f"scores: expected shape [N, K], got {_shape(s)} "
                         f"(for a single class use scores.reshape(-1, 1))")
    if t.ndim != 2:
        raise ValueError(f"targets: expected multi-hot shape [N, K], got {_shape(t)} "
                         f"(for single-label targets build a one-hot matrix first)")
    if s.shape != t.shape:
        raise ValueError(f"scores and targets must have the same shape [N, K], got scores {_shape(s)} "
                         f"and targets {_shape(t)}")
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise ValueError(f"scores: expected numbers, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores: {int(np.sum(~np.isfinite(s)))} non-finite value(s) (NaN or inf)")
    if not (np.issubdtype(t.dtype, np.number) or t.dtype == bool):
        raise ValueError(f"targets: expected a multi-hot 0/1 matrix, got dtype {t.dtype}")
    bad = ~np.isin(t, (0, 1))
    if np.any(bad):
        raise ValueError(f"targets: expected a multi-hot 0/1 matrix, found value(s) "
                         f"{sorted(set(np.unique(t[bad]).tolist()))[:5]}")
    return s, t.astype(np.int64)


def _binary_average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """scikit-learn's ``average_precision_score`` of one class with at least one positive: the sum over
    the distinct score thresholds, from the highest, of (recall gained) x (precision there); tied
    scores form one threshold. The sum runs from the lowest threshold up, as scikit-learn adds it."""
    order = np.argsort(score, kind="mergesort")[::-1]
    score, truth = score[order], truth[order].astype(np.float64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_pos = np.cumsum(truth)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall = true_pos / true_pos[-1]
    precision, recall = np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def _binary_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """F1 of the positive class, 0 where it is undefined (scikit-learn's ``zero_division=0``)."""
    tp = float(np.sum(truth & pred))
    denom = 2 * tp + float(np.sum(~truth & pred)) + float(np.sum(truth & ~pred))
    return 2 * tp / denom if denom else 0.0


def _weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's ``f1_score(truth, pred, average="weighted", zero_division=0)`` of two bool arrays:
    the F1 of "True" and of "False", weighted by their support in ``truth``."""
    support = {True: int(np.sum(truth)), False: int(np.sum(~truth))}
    total = support[True] + support[False]
    if total == 0:
        return 0.0
    return (support[True] * _binary_f1(truth, pred) + support[False] * _binary_f1(~truth, ~pred)) / total


def average_precision(scores: Any, targets: Any) -> np.ndarray:
    """Per-class average precision ``[K]`` (scikit-learn ``average_precision_score`` on each column).

    ``scores``: ``[N, K]`` real-valued (logits, probabilities or any monotone score);
    ``targets``: ``[N, K]`` multi-hot 0/1 (or bool). A class with no positive sample gets ``NaN``
    (AP is undefined there) and no warning is emitted. A class whose samples are all positive has
    AP = 1 (every retrieved sample is relevant).
    """
    s, t = _scores_and_targets(scores, targets)
    ap = np.full(s.shape[1], np.nan, dtype=np.float64)
    for k in range(s.shape[1]):
        if t[:, k].any():
            ap[k] = _binary_average_precision(t[:, k], s[:, k])
    return ap


def mean_average_precision(scores: Any, targets: Any) -> float:
    """mAP: the mean of :func:`average_precision` over classes with at least one positive.

    NaN when no class has a positive. On a split where every class occurs this is the plain mean
    over all K classes (the EMOTIC convention); classes absent from the split are left out rather than
    counted as 0 or making the mean NaN.
    """
    ap = average_precision(scores, targets)
    scored = ap[np.isfinite(ap)]
    return float(scored.mean()) if scored.size else float("nan")


def confusion_matrix(pred_or_scores: Any, target: Any, num_classes: int) -> np.ndarray:
    """Counts ``[K, K]`` (int64): entry ``[i, j]`` = samples of true class i predicted as class j.

    ``pred_or_scores``: scores ``[N, K]`` (arg-max taken; K must equal ``num_classes``) or predicted
    indices ``[N]``; ``target``: true indices ``[N]``. Every index must lie in ``[0, num_classes)``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    raw = _as_numpy(pred_or_scores, "pred_or_scores")
    if raw.ndim == 2 and raw.shape[1] != num_classes:
        raise ValueError(f"pred_or_scores: scores have {raw.shape[1]} columns but num_classes={num_classes}")
    pred = _predictions(raw)
    true = _class_indices(_as_numpy(target, "target"), "target")
    if len(pred) != len(true):
        raise ValueError(f"confusion_matrix: {len(pred)} predictions but {len(true)} targets")
    for name, a in (("predictions", pred), ("target", true)):
        out = (a < 0) | (a >= num_classes)
        if np.any(out):
            raise ValueError(f"confusion_matrix: {name} hold class index {int(a[out][0])} outside "
                             f"[0, {num_classes}) ({int(out.sum())} such sample(s))")
    if len(true) == 0:
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    return np.bincount(true * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm: Any) -> np.ndarray:
    """Per-class accuracy (recall) ``[K]`` from a confusion matrix (rows = true class).

    A class with no samples (an all-zero row) gets NaN.
    """
    m = _as_numpy(cm, "cm")
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cm: expected a square confusion matrix [K, K], got shape {_shape(m)}")
    m = m.astype(np.float64)
    totals = m.sum(axis=1)
    out = np.full(m.shape[0], np.nan, dtype=np.float64)
    has = totals > 0
    out[has] = np.diag(m)[has] / totals[has]
    return out


# ---------------------------------------------------------------------------------------------------
# Multimodal emotion recognition: IEMOCAP (four binary emotions) and CMU-MOSEI (sentiment regression),
# with the semantics of the MulT / CausalMER evaluation code (notes: reference/causalmer.md section 6).
# ---------------------------------------------------------------------------------------------------


def _finite_numbers(a: np.ndarray, name: str) -> np.ndarray:
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(a)))} non-finite value(s) (NaN or inf)")
    return a


def iemocap_predictions(scores: Any, threshold: float = 0.0) -> np.ndarray:
    """Per-emotion presence predictions ``[N, 4]`` (int64, 1 = present) from a model's IEMOCAP output.

    Accepted layouts:

    * ``[N, 4, 2]`` or ``[N, 8]`` (MulT's output, viewed as ``[N, 4, 2]`` like its ``view(-1, 4, 2)``):
      per emotion two scores (absent, present); the prediction is the arg-max of the pair, so a tie
      goes to "absent" (index 0), as ``argmax`` does in the reference code;
    * ``[N, 4]``: one score per emotion, present iff ``score > threshold``. The default threshold 0
      suits logits and hard 0/1 predictions; pass ``threshold=0.5`` for sigmoid probabilities.
    """
    s = _finite_numbers(_as_numpy(scores, "scores"), "scores")
    if s.ndim == 2 and s.shape[1] == 8:
        s = s.reshape(-1, 4, 2)
    if s.ndim == 3 and s.shape[1:] == (4, 2):
        return s.argmax(axis=-1).astype(np.int64)
    if s.ndim == 2 and s.shape[1] == 4:
        return (s > threshold).astype(np.int64)
    raise ValueError(f"scores: expected IEMOCAP scores [N, 4, 2], [N, 8] or [N, 4], got shape {_shape(s)}")


def _iemocap_truths(truths: Any) -> np.ndarray:
    t = _finite_numbers(_as_numpy(truths, "truths"), "truths")
    if t.ndim == 3 and t.shape[1:] == (4, 2):  # the file's one-hot (absent, present) pairs
        return t.argmax(axis=-1).astype(np.int64)
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"truths: expected presence [N, 4] (0/1) or one-hot pairs [N, 4, 2], got shape {_shape(t)}")
    bad = ~np.isin(t, (0, 1))
    if np.any(bad):
        raise ValueError(f"truths: expected 0/1 presence values, found {sorted(set(np.unique(t[bad]).tolist()))[:5]}")
    return t.astype(np.int64)


def iemocap_metrics(scores: Any, truths: Any, *, threshold: float = 0.0) -> dict[str, float]:
    """IEMOCAP accuracy and weighted F1 per emotion, and their means (MulT's ``eval_iemocap``).

    ``scores``: see :func:`iemocap_predictions` (``[N, 4, 2]``, ``[N, 8]`` or ``[N, 4]``);
    ``truths``: presence ``[N, 4]`` in {0, 1} (the loader's multi-hot ``labels``) or the file's one-hot
    ``[N, 4, 2]``. Each emotion (Neutral, Happy, Sad, Angry) is a binary task scored on its own:
    ``acc_<emotion>`` = scikit-learn ``accuracy_score`` and ``f1_<emotion>`` = ``f1_score(truth,
    prediction, average="weighted")`` (the F1 of "present" and of "absent", weighted by their true
    support; a class never predicted contributes F1 0, without a warning). ``mean_acc`` is
    CausalMER's "average accuracy" (its headline IEMOCAP number) and ``mean_f1`` the mean F1.
    Keys are lower case, e.g. ``acc_happy``. An empty input is an error.
    """
    pred = iemocap_predictions(scores, threshold)
    true = _iemocap_truths(truths)
    if pred.shape != true.shape:
        raise ValueError(f"iemocap_metrics: predictions for {pred.shape[0]} samples but truths for {true.shape[0]}")
    if len(true) == 0:
        raise ValueError("iemocap_metrics: no samples (accuracy of an empty set is undefined)")
    out: dict[str, float] = {}
    accs, f1s = [], []
    for e, emotion in enumerate(IEMOCAP_EMOTIONS):
        acc = float(np.mean(true[:, e] == pred[:, e]))
        f1 = _weighted_f1(true[:, e].astype(bool), pred[:, e].astype(bool))
        out[f"acc_{emotion.lower()}"] = acc
        out[f"f1_{emotion.lower()}"] = f1
        accs.append(acc)
        f1s.append(f1)
    out["mean_acc"] = float(np.mean(accs))
    out["mean_f1"] = float(np.mean(f1s))
    return out


def _sentiment_values(a: np.ndarray, name: str) -> np.ndarray:
    if (a.ndim == 3 and a.shape[1:] == (1, 1)) or (a.ndim == 2 and a.shape[1] == 1):
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected sentiment values [N], [N, 1] or [N, 1, 1], got shape {_shape(a)}")
    return _finite_numbers(a, name)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN (without a warning) when either side is constant."""
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt(np.sum(da * da) * np.sum(db * db))
    return float(np.sum(da * db) / denom) if denom > 0 else float("nan")


def mosei_metrics(preds: Any, truths: Any) -> dict[str, float | int]:
    """CMU-MOSEI / MOSI sentiment metrics with the MulT and CausalMER conventions side by side.

    ``preds``: regression outputs ``[N]``, ``[N, 1]`` or ``[N, 1, 1]``, or 7-class scores ``[N, 7]``
    (CausalMER's ``cls`` task: the prediction is ``argmax - 3``, a sentiment in -3..3);
    ``truths``: sentiment ``[N]`` / ``[N, 1]`` / ``[N, 1, 1]`` in [-3, 3]. With p the predictions and
    y the truths, nz = {i: y_i != 0}:

    * ``acc7`` = mean(round(clip(p, -3, 3)) == round(clip(y, -3, 3))) with numpy rounding (half to
      even), as MulT; CausalMER's "average accuracy" on MOSEI. ``acc5``: the same with clip +-2;
    * ``acc2_nonneg``: accuracy of (p >= 0) against (y >= 0) on all samples (negative vs
      non-negative, the pre-2019 convention, CausalMER's ``acc2``);
    * ``acc2_nonzero``: accuracy of (p > 0) against (y > 0) on nz only (negative vs positive, zeros
      excluded, MulT's reported Acc2, CausalMER's ``acc2_nonzero``); for 7-class scores the positive
      decision is p >= 0 (argmax >= 3), as CausalMER codes it;
    * ``f1_nonneg`` / ``f1_nonzero``: weighted F1 on the same two binary problems, with the truth as
      scikit-learn's ``y_true`` (MulT's code passes the predictions as ``y_true``; weighted F1 is not
      symmetric, so its numbers can differ slightly). ``f1_binary_nonneg`` / ``f1_binary_nonzero``:
      the plain binary F1 of the positive class, as CausalMER reports it;
    * ``mae`` = mean |p - y| and ``corr`` = Pearson correlation, over all samples (NaN when either
      side is constant);
    * ``n`` and ``n_nonzero``: sample counts (ints). The non-zero metrics are NaN when every truth is 0.
    """
    raw = _as_numpy(preds, "preds")
    cls = raw.ndim == 2 and raw.shape[1] == 7
    p = (_finite_numbers(raw, "preds").argmax(axis=1) - 3).astype(np.float64) if cls else _sentiment_values(raw, "preds")
    y = _sentiment_values(_as_numpy(truths, "truths"), "truths")
    if len(p) != len(y):
        raise ValueError(f"mosei_metrics: {len(p)} predictions but {len(y)} truths")
    if len(y) == 0:
        raise ValueError("mosei_metrics: no samples (accuracy of an empty set is undefined)")

    def rounded(a: np.ndarray, bound: float) -> np.ndarray:
        return np.round(np.clip(a, -bound, bound))

    out: dict[str, float | int] = {
        "acc7": float(np.mean(rounded(p, 3) == rounded(y, 3))),
        "acc5": float(np.mean(rounded(p, 2) == rounded(y, 2))),
    }
    pos_p, pos_y = p >= 0, y >= 0
    out["acc2_nonneg"] = float(np.mean(pos_y == pos_p))
    out["f1_nonneg"] = _weighted_f1(pos_y, pos_p)
    out["f1_binary_nonneg"] = _binary_f1(pos_y, pos_p)
    nz = y != 0
    if np.any(nz):
        pos_p = (p[nz] >= 0) if cls else (p[nz] > 0)
        pos_y = y[nz] > 0
        out["acc2_nonzero"] = float(np.mean(pos_y == pos_p))
        out["f1_nonzero"] = _weighted_f1(pos_y, pos_p)
        out["f1_binary_nonzero"] = _binary_f1(pos_y, pos_p)
    else:
        out["acc2_nonzero"] = out["f1_nonzero"] = out["f1_binary_nonzero"] = float("nan")
    out["mae"] = float(np.mean(np.abs(p - y)))
    out["corr"] = _pearson(p, y)
    out["n"] = int(len(y))
    out["n_nonzero"] = int(np.sum(nz))
    return out
