"""The MulT-format data bundle: CausalMER's metrics drive model selection and scoring, and chance is
the metric of a constant prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolib import experiments, metrics
from reprolib.models.mult import MulT

TINY = {"sizes": {"train": 40, "valid": 16, "test": 24}, "dims": {"text": 8, "audio": 6, "vision": 5}, "lengths": 6}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path))
    return tmp_path


def test_iemocap_bundle_scores_with_mean_accuracy_and_knows_chance(data_dir):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    assert set(d.splits) == {"train", "val", "test"} and d.eval_splits() == ["test"]
    assert d.target_key == "labels" and d.metric_name == "mean acc" and d.num_classes == 4 and d.synthetic
    assert str(d.root).startswith(str(data_dir))
    train, test = d.targets("train").numpy(), d.targets("test").numpy()
    majority = train.mean(axis=0) > 0.5
    assert d.chance() == pytest.approx(float((test == majority).mean()))  # per-emotion accuracy, averaged
    scores = torch.randn(len(test), 8)
    assert d.score(scores, torch.from_numpy(test)) == metrics.iemocap_metrics(scores, test)["mean_acc"]


def test_mosei_bundle_scores_with_acc7(data_dir):
    d = experiments.open_mult("mosei", synthetic_knobs=TINY)
    assert d.target_key == "label" and d.metric_name == "acc7"
    test = d.targets("test").numpy()
    median = np.median(d.targets("train").numpy())
    assert d.chance() == pytest.approx(float((np.round(np.clip(test, -3, 3)) == np.round(median)).mean()))


def test_train_and_score_selects_and_scores_with_the_bundle_metric(data_dir):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    run = experiments.train_and_score(
        lambda: MulT.for_data(d.splits["train"], d=4, num_heads=2, layers=1, kernel_sizes=(1, 1, 1)), d,
        seed=0, epochs=1, batch_size=16)
    logits, targets = run.outputs["test"]
    assert logits.shape == (24, 8)
    assert run.scores["test"] == pytest.approx(metrics.iemocap_metrics(logits, targets)["mean_acc"])
    assert 0.0 <= run.fit.best_val <= 1.0


def test_bad_mult_requests_are_refused(data_dir):
    with pytest.raises(ValueError, match="must be one of"):
        experiments.open_mult("mosi")
    with pytest.raises(ValueError, match="synthetic data only"):
        experiments.open_mult("iemocap", data_root=data_dir, synthetic_knobs=TINY)
