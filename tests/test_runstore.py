"""The run store: a run is reused only when code, model, data, seed and settings all match, a reused
run is the trained run (weights, history, scores, random state afterwards), and anything else trains."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from reprolib import experiments, runstore
from reprolib.models.mult import MulT

TINY = {"sizes": {"train": 40, "valid": 16, "test": 24}, "dims": {"text": 8, "audio": 6, "vision": 5}, "lengths": 6}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv(runstore.ENV_DISABLE, raising=False)
    return tmp_path / "results" / "checkpoints" / "runs"


def _build(d, **options):
    def make():
        model = MulT.for_data(d.splits["train"], d=4, num_heads=2, layers=1, kernel_sizes=(1, 1, 1))
        for key, value in options.items():
            setattr(model, key, value)
        return model
    return make


def _train(d, capsys, lr=1e-3, **options):
    run = experiments.train_and_score(_build(d, **options), d, seed=0, epochs=2, batch_size=16, lr=lr, desc="tiny")
    return run, "reusing the run trained as 'tiny'" in capsys.readouterr().out


def test_a_matching_run_is_reused_and_equals_the_trained_one(store, capsys):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    first, reused = _train(d, capsys)
    after_training = (random.random(), np.random.rand(), torch.rand(1).item())
    assert not reused and len(list(store.glob("*.pt"))) == 1
    second, reused = _train(d, capsys)
    after_reuse = (random.random(), np.random.rand(), torch.rand(1).item())
    assert reused
    assert second.fit.history == first.fit.history and second.fit.best_epoch == first.fit.best_epoch
    assert second.scores == first.scores
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert after_reuse == after_training  # what a notebook draws next does not depend on the reuse


def test_any_difference_trains_again(store, capsys, monkeypatch):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    _train(d, capsys)
    assert not _train(d, capsys, lr=2e-3)[1]  # a setting
    assert not _train(d, capsys, fusion_note="other")[1]  # a model option (plain attribute of a module)
    monkeypatch.setattr(runstore, "_code_digest", "another version of the code")
    assert not _train(d, capsys)[1]


def test_changed_data_trains_again(store, capsys):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    _train(d, capsys)
    before = runstore.describe_data(d)
    path = d.root if d.root.is_file() else next(p for p in d.root.rglob("*") if p.is_file())
    stat = path.stat()
    import os
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # rewritten: same size, new time
    assert runstore.describe_data(d) != before
    assert not _train(d, capsys)[1]


def test_damaged_or_foreign_entries_are_retrained(store, capsys):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    _train(d, capsys)
    entry = next(store.glob("*.pt"))
    entry.write_bytes(b"not a checkpoint")
    assert not _train(d, capsys)[1]
    assert _train(d, capsys)[1]  # rewritten by the retraining
    saved = torch.load(entry, weights_only=True)
    saved["description"] = saved["description"].replace('"seed": 0', '"seed": 7')  # a hash collision, simulated
    torch.save(saved, entry)
    assert not _train(d, capsys)[1]


def test_what_has_no_stable_description_is_trained_and_not_stored(store, capsys):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    assert not _train(d, capsys, hook=lambda x: x)[1]
    assert not _train(d, capsys, hook=lambda x: x)[1]
    assert not list(store.glob("*.pt"))
    with pytest.raises(runstore.Unfingerprintable, match="fit keyword on_epoch_end"):
        runstore.describe_run(nn.Linear(2, 2), d, 0, {"on_epoch_end": print})


def test_switched_off_by_the_environment(store, capsys, monkeypatch):
    d = experiments.open_mult("iemocap", synthetic_knobs=TINY)
    _train(d, capsys)
    monkeypatch.setenv(runstore.ENV_DISABLE, "1")
    assert not _train(d, capsys)[1]


def test_options_frozen_parts_and_weights_change_the_model_description():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.1))
    b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.2))
    b.load_state_dict(a.state_dict())
    assert runstore.describe_model(a)["weights"] == runstore.describe_model(b)["weights"]
    assert runstore.describe_model(a) != runstore.describe_model(b)  # Dropout.p is an option
    frozen = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.1))
    frozen.load_state_dict(a.state_dict())
    frozen[0].weight.requires_grad_(False)
    assert runstore.describe_model(frozen)["weights"] != runstore.describe_model(a)["weights"]
    with torch.no_grad():
        b[0].bias.add_(1e-6)
    assert runstore.describe_model(a)["weights"] != runstore.describe_model(b)["weights"]
