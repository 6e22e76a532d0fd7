"""Measures of how strongly context and labels are tied together."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import normalized_mutual_info_score


def contingency(labels: np.ndarray, groups: np.ndarray, n_labels: int, n_groups: int) -> np.ndarray:
    """Counts table [n_labels, n_groups]: how many samples of each label fall in each context group."""
    table = np.zeros((n_labels, n_groups), dtype=np.int64)
    np.add.at(table, (np.asarray(labels, dtype=int), np.asarray(groups, dtype=int)), 1)
    return table


def context_nmi(labels: np.ndarray, groups: np.ndarray) -> float:
    """Normalised mutual information between label and context group: 0 = independent, 1 = one determines the other."""
    return float(normalized_mutual_info_score(labels, groups))


def chance_accuracy(labels: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent label."""
    counts = np.bincount(np.asarray(labels, dtype=int))
    return float(counts.max() / counts.sum())
