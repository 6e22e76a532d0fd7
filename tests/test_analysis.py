"""Shortcut and helpful-cue measures used by notebook 09 (hand-computed cases)."""

from __future__ import annotations

import numpy as np
import pytest

from reprolib.analysis import accuracy_with_and_without_cue, shortcut_rate


def test_shortcut_rate_counts_only_samples_where_the_context_misleads():
    labels = np.array([0, 1, 2, 3, 0])
    suggested = np.array([0, 2, 2, 1, 1])  # misleading on samples 1, 3, 4
    predictions = np.array([0, 2, 1, 3, 1])  # follows the suggestion on 1 and 4, not on 3
    assert shortcut_rate(predictions, labels, suggested) == pytest.approx(2 / 3)
    assert shortcut_rate(labels, labels, suggested) == 0.0
    with pytest.raises(ValueError, match="undefined"):
        shortcut_rate(labels, labels, labels)


def test_cue_gain_is_accuracy_with_minus_without():
    labels = np.array([0, 1, 2, 3])
    predictions = np.array([0, 1, 0, 3])
    cue = np.array([True, True, False, False])
    assert accuracy_with_and_without_cue(predictions, labels, cue) == {"with_cue": 1.0, "without_cue": 0.5, "gain": 0.5}
    with pytest.raises(ValueError, match="present in some"):
        accuracy_with_and_without_cue(predictions, labels, np.ones(4, bool))
