"""Engine, context clustering, bias measures, size presets, progress bars and results I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from reprolib import analysis, config
from reprolib.causal.dictionary import ColourLayout, extract_features, fit_context_clusters
from reprolib.engine import NonFiniteLossError, accuracy, fit, predict
from reprolib.progress import bars_disabled, progress
from reprolib.results import save_figure, write_metrics
from reprolib.seed import seed_everything


class Blobs(Dataset):
    """Two Gaussian blobs as 'images' [3, 4, 4]: label = which blob."""

    def __init__(self, n: int, seed: int, shift: float = 2.0):
        g = torch.Generator().manual_seed(seed)
        self.label = torch.arange(n) % 2
        self.x = torch.randn(n, 3, 4, 4, generator=g) + shift * self.label.view(-1, 1, 1, 1).float()

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return {"context": self.x[i], "label": self.label[i]}


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(48, 2)

    def forward(self, batch):
        return self.classifier(batch["context"].flatten(1))


def test_fit_learns_keeps_best_val_epoch_and_is_reproducible():
    train, val = Blobs(200, 0), Blobs(100, 1)
    results = []
    for _ in range(2):
        seed_everything(0)
        model = Linear()
        res = fit(model, train, val, epochs=4, lr=1e-2, batch_size=32, seed=0)
        results.append((res, model.classifier.weight.detach().clone()))
    res, weight = results[0]
    assert len(res.history) == 4 and res.best_val == max(h["val"] for h in res.history)
    assert accuracy(*predict(model, val)) == pytest.approx(res.best_val)  # restored best weights
    assert res.best_val > 0.75  # chance is 0.5
    assert torch.equal(weight, results[1][1])


def test_nan_loss_stops_with_epoch_and_step():
    def exploding(logits, target):
        return logits.sum() * float("nan")

    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        fit(Linear(), Blobs(64, 0), Blobs(16, 1), epochs=1, loss_fn=exploding, desc="nan test")


def test_colour_layout_ignores_masked_pixels():
    img = torch.full((1, 3, 8, 8), 0.5)
    masked = img.clone()
    masked[:, :, 2:6, 2:6] = 0.0
    assert torch.allclose(ColourLayout(grid=2)(img), ColourLayout(grid=2)(masked), atol=1e-6)


def test_context_clusters_recover_groups_and_give_a_prior():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    truth = rng.integers(0, 3, 300)
    feats = centres[truth] + rng.normal(0, 0.5, (300, 2))
    clusters = fit_context_clusters(feats, 3, seed=0)
    groups = clusters.assign(feats)
    assert analysis.context_nmi(truth, groups) > 0.99
    prior = clusters.prior(feats)
    assert prior.shape == (3,) and prior.sum() == pytest.approx(1.0)
    assert np.allclose(np.sort(clusters.centroids(), axis=0), np.sort(centres, axis=0), atol=0.3)
    with pytest.raises(ValueError, match="cannot form 5 clusters"):
        fit_context_clusters(feats[:4], 5)


def test_extract_features_runs_in_dataset_order():
    data = Blobs(10, 0)
    data.x = torch.rand(10, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.1  # no black
    out = extract_features(ColourLayout(grid=1), data, batch_size=3)
    assert out.shape == (10, 3 + 6)
    assert np.allclose(out[4, :3], data.x[4].mean(dim=(1, 2)).numpy(), atol=1e-5)


def test_contingency_and_nmi():
    labels = np.array([0, 0, 1, 1, 2, 2])
    table = analysis.contingency(labels, np.array([0, 0, 1, 1, 1, 0]), 3, 2)
    assert table.tolist() == [[2, 0], [0, 2], [1, 1]]
    assert analysis.context_nmi(labels, labels) == pytest.approx(1.0)
    assert analysis.chance_accuracy(np.array([0, 0, 0, 1])) == 0.75


def test_resolve_presets_let_explicit_values_win():
    presets = {"smoke": {"epochs": 2, "lr": 0.1}, "full": {"epochs": 30, "lr": 0.01}}
    cfg = config.resolve("full", {"epochs": 3, "lr": None}, presets)
    assert (cfg.size, cfg.epochs, cfg.lr) == ("full", 3, 0.01)
    with pytest.raises(ValueError, match="size must be one of"):
        config.resolve("huge", {}, presets)
    with pytest.raises(KeyError, match="no smoke preset"):
        config.resolve("smoke", {"batch": 4}, presets)


def test_progress_honours_tqdm_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert bars_disabled() and progress(range(3)).disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not bars_disabled()


def test_metrics_and_figures_are_written_with_provenance(tmp_path):
    import matplotlib.pyplot as plt

    path = write_metrics("demo", {"acc": np.float32(0.5)}, {"seed": 1}, folder=tmp_path)
    payload = json.loads(path.read_text())
    assert payload["metrics"]["acc"] == 0.5 and payload["provenance"]["parameters"] == {"seed": 1}
    assert {"git_commit", "versions", "created"} <= set(payload["provenance"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert save_figure(fig, "demo", folder=tmp_path).exists()
    plt.close(fig)
