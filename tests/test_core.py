"""Context clustering, bias measures, size presets, progress bars and results I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reprolib import analysis, config
from reprolib.causal.dictionary import ColourLayout, extract_features, fit_context_clusters
from reprolib.progress import bars_disabled, progress
from reprolib.results import save_figure, write_metrics


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
    images = torch.rand(10, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.1  # no black
    data = [{"context": x} for x in images]
    out = extract_features(ColourLayout(grid=1), data, batch_size=3)
    assert out.shape == (10, 3 + 6)
    assert np.allclose(out[4, :3], images[4].mean(dim=(1, 2)).numpy(), atol=1e-5)


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
    prov = payload["provenance"]
    assert {"git_commit", "versions", "created", "machine", "lock"} <= set(prov)
    assert {"cpu", "cpu_capability", "torch_threads", "gpu"} <= set(prov["machine"])
    assert {"torch", "torchvision", "numpy", "sklearn"} <= set(prov["versions"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert save_figure(fig, "demo", folder=tmp_path).exists()
    plt.close(fig)


def test_results_go_to_results_lab_in_a_jupyterlab_kernel(monkeypatch):
    from reprolib import paths

    monkeypatch.delenv("REPROLIB_RESULTS", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert paths.results_dir() == paths.committed_results_dir()  # make reproduce, refresh, the sweeps
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/notebooks/01_context_bias.ipynb")  # set by Jupyter Server
    assert paths.results_dir() == paths.committed_results_dir() / "lab"
    monkeypatch.setenv("REPROLIB_RESULTS", "/tmp/elsewhere")  # an explicit folder always wins
    assert str(paths.results_dir()) == "/tmp/elsewhere"
