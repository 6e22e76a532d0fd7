"""Evaluation metrics: top-1 accuracy (CAER-S), per-class AP and mAP (EMOTIC, GroupWalk), confusion matrices.

Every function accepts torch tensors (any device, with or without grad) or numpy arrays / nested lists,
and returns plain Python floats or numpy arrays, so results go straight into a metrics JSON.

Conventions, fixed here once for the whole repo:

* **accuracy** takes either scores ``[N, K]`` (the prediction is the arg-max over K) or predictions
  ``[N]`` (integer class indices) against integer targets ``[N]``.
* **average precision** is scikit-learn's ``average_precision_score`` per class, on raw scores (any
  monotone transform of the scores, e.g. a sigmoid, gives the same AP). This is the EMOTIC protocol of
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
from sklearn.metrics import average_precision_score
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

__all__ = ["accuracy", "average_precision", "mean_average_precision", "confusion_matrix",
           "per_class_accuracy"]


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
            ap[k] = average_precision_score(t[:, k], s[:, k])
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
    return _sk_confusion_matrix(true, pred, labels=np.arange(num_classes)).astype(np.int64)


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
