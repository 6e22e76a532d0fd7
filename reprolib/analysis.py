"""Measures of how strongly context and labels are tied together."""

from __future__ import annotations

import numpy as np


def contingency(labels: np.ndarray, groups: np.ndarray, n_labels: int, n_groups: int) -> np.ndarray:
    """Counts table [n_labels, n_groups]: how many samples of each label fall in each context group."""
    table = np.zeros((n_labels, n_groups), dtype=np.int64)
    np.add.at(table, (np.asarray(labels, dtype=int), np.asarray(groups, dtype=int)), 1)
    return table


def context_nmi(labels: np.ndarray, groups: np.ndarray) -> float:
    """Normalised mutual information between label and context group: 0 = independent, 1 = one determines the other."""
    from sklearn.metrics import normalized_mutual_info_score  # imported when used: scikit-learn is slow to load

    return float(normalized_mutual_info_score(labels, groups))


def chance_accuracy(labels: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent label."""
    counts = np.bincount(np.asarray(labels, dtype=int))
    return float(counts.max() / counts.sum())


def label_distribution_per_group(targets: np.ndarray, groups: np.ndarray, n_groups: int,
                                 num_classes: int) -> np.ndarray:
    """P(label | group) as a [n_groups, num_classes] table whose non-empty rows sum to 1.

    ``targets``: class indices (single-label) or a multi-hot matrix (multi-label, where a row is the
    share of each category among the labels given in that group). Empty groups get a zero row.
    """
    targets, groups = np.asarray(targets), np.asarray(groups, dtype=int)
    counts = np.zeros((n_groups, num_classes), dtype=np.float64)
    if targets.ndim == 1:
        np.add.at(counts, (groups, targets.astype(int)), 1.0)
    else:
        np.add.at(counts, groups, targets.astype(np.float64))
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)


def label_dependence(targets: np.ndarray, groups: np.ndarray, n_groups: int, num_classes: int) -> float:
    """How far P(label | group) is from P(label), averaged over groups by their size:
    sum_z P(z) * TV(P(y | z), P(y)), with TV the total-variation distance. 0 = the context group says
    nothing about the label; it works for single- and multi-label targets alike."""
    groups = np.asarray(groups, dtype=int)
    per_group = label_distribution_per_group(targets, groups, n_groups, num_classes)
    weights = np.bincount(groups, minlength=n_groups) / len(groups)
    overall = weights @ per_group  # P(y), as the mixture of the groups
    return float((weights * 0.5 * np.abs(per_group - overall).sum(axis=1)).sum())


def cluster_purity(clusters: np.ndarray, truth: np.ndarray) -> float:
    """Share of samples whose cluster's most common true group is their own (1 = no cluster mixes
    groups; splitting a group over several clusters is not penalised, unlike the adjusted Rand index)."""
    clusters, truth = np.asarray(clusters, dtype=int), np.asarray(truth, dtype=int)
    table = contingency(clusters, truth, clusters.max() + 1, truth.max() + 1)
    return float(table.max(axis=1).sum() / len(clusters))


def shortcut_rate(predictions: np.ndarray, labels: np.ndarray, suggested: np.ndarray) -> float:
    """How often a model answers what the context suggests when the context is wrong: the share of
    samples with ``suggested != label`` whose prediction is ``suggested``. 0 = the shortcut is unused;
    1/K or so = it is used no more than a wrong class at random; near 1 = the model reads the context."""
    predictions, labels, suggested = (np.asarray(a, dtype=int) for a in (predictions, labels, suggested))
    misleading = suggested != labels
    if not misleading.any():
        raise ValueError("no sample where the context suggests a wrong class: the shortcut rate is undefined")
    return float((predictions[misleading] == suggested[misleading]).mean())


def accuracy_with_and_without_cue(predictions: np.ndarray, labels: np.ndarray, cue: np.ndarray) -> dict[str, float]:
    """Accuracy on the samples where a helpful cue is present (``cue`` True) and where it is not, and
    the difference: how much a model profits from the cue (a model blind to it gains about 0)."""
    predictions, labels, cue = np.asarray(predictions, dtype=int), np.asarray(labels, dtype=int), np.asarray(cue, bool)
    if cue.all() or not cue.any():
        raise ValueError("the cue must be present in some samples and absent in others")
    correct = predictions == labels
    with_cue, without = float(correct[cue].mean()), float(correct[~cue].mean())
    return {"with_cue": with_cue, "without_cue": without, "gain": with_cue - without}
