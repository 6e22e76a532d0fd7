"""Context features and their clustering: the groups behind the confounder dictionary.

Real datasets do not say which scene a picture shows, so the context is grouped by k-means over
features of the subject-masked image. Notebook 01 uses these groups to measure the context bias on
data without scene ids; CCIM's confounder dictionary (notebook 02) is built from the same clusters:
``Z`` = the centroids, ``P`` = each cluster's share of the training images.

Two kinds of feature extractor are accepted: any ``nn.Module`` mapping an image batch to vectors
(a Places365 ResNet when the user has the weights, or one of the repo's own encoders), or the
label-free :class:`ColourLayout` descriptor, which needs no training and is a fair stand-in on the
synthetic scenes, whose types differ by palette and layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, Dataset
from reprolib.progress import progress

MINIBATCH_ABOVE = 20_000  # samples; above this k-means switches to the mini-batch variant


class ColourLayout(nn.Module):
    """Mean colour of each cell of a ``grid`` x ``grid`` layout plus global colour mean and spread.

    Black (masked) pixels are left out of every average, so where the subject was does not move the
    descriptor. Output size: 3 * grid**2 + 6.
    """

    def __init__(self, grid: int = 4, black: float = 0.02):
        super().__init__()
        self.grid = grid
        self.black = black

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (x.amax(dim=1, keepdim=True) > self.black).float()  # [B,1,H,W]
        cells_sum = nn.functional.adaptive_avg_pool2d(x * keep, self.grid)
        cells_n = nn.functional.adaptive_avg_pool2d(keep, self.grid).clamp_min(1e-6)
        cells = (cells_sum / cells_n).flatten(1)
        n = keep.sum(dim=(2, 3)).clamp_min(1.0)
        mean = (x * keep).sum(dim=(2, 3)) / n
        var = ((x - mean[:, :, None, None]) ** 2 * keep).sum(dim=(2, 3)) / n
        return torch.cat([cells, mean, var.sqrt()], dim=1)


@torch.no_grad()
def extract_features(encoder: nn.Module, data: Dataset, *, view: str = "context", batch_size: int = 256,
                     device: str | torch.device | None = None, desc: str = "context features") -> np.ndarray:
    """Run ``encoder`` over one view of every sample (in dataset order) and return an [N, d] array."""
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = encoder.to(device).eval()
    out = []
    for batch in progress(DataLoader(data, batch_size=batch_size, shuffle=False), desc=desc, leave=False):
        out.append(encoder(batch[view].to(device)).float().cpu())
    return torch.cat(out).numpy()


@dataclass
class ContextClusters:
    """k-means over standardised context features, fitted on one split and applicable to others."""

    scaler: StandardScaler
    kmeans: KMeans | MiniBatchKMeans

    @property
    def n_clusters(self) -> int:
        return int(self.kmeans.n_clusters)

    def assign(self, features: np.ndarray) -> np.ndarray:
        """Cluster index of each row."""
        return self.kmeans.predict(self.scaler.transform(features))

    def centroids(self) -> np.ndarray:
        """Centroids in the original feature units (the dictionary entries z_i)."""
        return self.scaler.inverse_transform(self.kmeans.cluster_centers_).astype(np.float32)

    def prior(self, features: np.ndarray) -> np.ndarray:
        """Share of ``features`` rows in each cluster (P(z_i)); sums to 1."""
        counts = np.bincount(self.assign(features), minlength=self.n_clusters).astype(np.float64)
        return (counts / counts.sum()).astype(np.float32)


def fit_context_clusters(features: np.ndarray, n_clusters: int, seed: int = 0) -> ContextClusters:
    """k-means with ``n_clusters`` groups (seeded; mini-batch for large sets) on standardised features."""
    if len(features) < n_clusters:
        raise ValueError(f"cannot form {n_clusters} clusters from {len(features)} samples")
    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    if len(features) > MINIBATCH_ABOVE:
        km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=3, batch_size=4096)
    else:
        km = KMeans(n_clusters=n_clusters, random_state=seed, n_init=10)
    km.fit(scaled)
    return ContextClusters(scaler=scaler, kmeans=km)
