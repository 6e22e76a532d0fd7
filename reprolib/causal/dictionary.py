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

import json
import lzma
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from reprolib import atomic, dryrun
from reprolib.data.views import DataFormatError, read_npy_header
from reprolib.progress import progress

if TYPE_CHECKING:  # scikit-learn is imported where clusters are fitted: it costs a kernel ~2 s to load
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.preprocessing import StandardScaler

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
    out, started = [], time.perf_counter()
    for batch in progress(DataLoader(data, batch_size=batch_size, shuffle=False), desc=desc, leave=False):
        out.append(encoder(batch[view].to(device)).float().cpu())
    if dryrun.active():
        dryrun.record_evaluation(desc, time.perf_counter() - started, items=len(data), full_items=dryrun.full_length(data))
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
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    if len(features) > MINIBATCH_ABOVE:
        km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=3, batch_size=4096)
    else:
        km = KMeans(n_clusters=n_clusters, random_state=seed, n_init=10)
    km.fit(scaled)
    return ContextClusters(scaler=scaler, kmeans=km)


# --------------------------------------------------------------------------------------------------
# The confounder dictionary: Z (prototypes) and P (their prior), with provenance, saved without pickle.

DICTIONARY_FORMAT = 1
# Bounds checked before a dictionary file is inflated. A dictionary is a few MB (N prototypes x d_z
# floats); np.savez stores its members uncompressed, so a member inflating 1000-fold is a zip bomb.
MAX_DICTIONARY_BYTES = 1 << 30
MAX_COMPRESSION_RATIO = 1000
_MEMBER_KINDS = {"Z": "fiu", "P": "fiu", "provenance": "U"}  # numpy dtype kinds each member may hold
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError,
               NotImplementedError, RuntimeError)  # what zipfile raises for truncated, corrupt or odd archives


class Places365Features(nn.Module):
    """A Places365 ResNet as a feature extractor: resize to ``size``, ImageNet-normalise, pool.

    This is the paper's recipe (global-average-pool features of a scene classifier). The dataset views
    are in [0, 1] with the subject already painted black, so the normalisation happens here.
    """

    def __init__(self, encoder: nn.Module, size: int = 224):
        super().__init__()
        self.encoder = encoder
        self.size = size
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.encoder((x - self.mean) / self.std)


def dictionary_backbone(places365_weights: str | None = None, arch: str = "resnet152",
                        grid: int = 4) -> tuple[nn.Module, dict[str, Any]]:
    """The context feature extractor and a description of it for the dictionary's provenance.

    With a local Places365 checkpoint: that ResNet's pooled features (the paper's choice). Without
    one (nothing is downloaded, ever): the label-free :class:`ColourLayout` descriptor. Neither has
    seen an emotion label, which is what makes the dictionary a description of the *context* alone.
    """
    if places365_weights:
        from reprolib.models.backbones import build_encoder

        encoder = Places365Features(build_encoder(arch, weights=places365_weights))
        return encoder, {"backbone": f"{arch}-places365", "layer": "global average pool",
                         "weights": str(places365_weights)}
    return ColourLayout(grid=grid), {"backbone": "ColourLayout", "layer": f"{grid}x{grid} cell colours + colour mean/std",
                                     "weights": None}


@dataclass
class ConfounderDictionary:
    """CCIM's confounder dictionary: ``Z`` [N, d_z] context prototypes and ``P`` [N] their prior P(z).

    ``provenance`` says how it was made (backbone, layer, N, seed, sample count, data). Saved as an
    ``.npz`` of plain arrays (the provenance as a JSON string), so loading never unpickles anything.
    """

    Z: np.ndarray
    P: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.Z = np.asarray(self.Z, dtype=np.float32)
        self.P = np.asarray(self.P, dtype=np.float32).reshape(-1)
        problem = _dictionary_problem(self.Z, self.P)
        if problem:
            raise ValueError(f"not a confounder dictionary: {problem}")

    @property
    def size(self) -> int:
        return int(self.Z.shape[0])

    @property
    def dim(self) -> int:
        return int(self.Z.shape[1])

    def with_uniform_prior(self) -> "ConfounderDictionary":
        """The same prototypes with P(z) = 1/N (the prior ablation)."""
        return ConfounderDictionary(self.Z, np.full(self.size, 1.0 / self.size, np.float32),
                                    {**self.provenance, "prior": "uniform"})

    def randomised(self, seed: int = 0) -> "ConfounderDictionary":
        """Random prototypes of the same size (the paper's "random dictionary" ablation): each column
        drawn from a normal distribution with that feature's mean and spread over the prototypes,
        so ``g`` keeps its scale but carries no context; the prior P(z) is kept."""
        rng = np.random.default_rng(seed)
        Z = rng.normal(self.Z.mean(axis=0), self.Z.std(axis=0) + 1e-6, size=self.Z.shape)
        return ConfounderDictionary(Z.astype(np.float32), self.P, {**self.provenance, "prototypes": f"random (seed {seed})"})

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz) atomically; returns it."""
        path = Path(path)
        meta = json.dumps({"format": DICTIONARY_FORMAT, **self.provenance}, sort_keys=True)
        with atomic.replacing(path, suffix=".npz") as tmp:  # a unique temp: concurrent writers never share it
            np.savez(tmp, Z=self.Z, P=self.P, provenance=np.array(meta))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ConfounderDictionary":
        """Read a dictionary written by :meth:`save`; anything else is refused with the reason.

        Bounded before anything is inflated: each member's ``.npy`` header must declare exactly the
        bytes the zip records for it, within :data:`MAX_DICTIONARY_BYTES` and
        :data:`MAX_COMPRESSION_RATIO`, and hold numbers (Z, P) or one string (provenance). Every
        refusal is a :class:`~reprolib.data.views.DataFormatError` naming the file and the member.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no confounder dictionary at {path}")
        refuse = f"{path}: not a confounder dictionary written by reprolib"
        try:
            with zipfile.ZipFile(path) as archive:
                arrays = _read_members(archive, refuse)
        except DataFormatError:
            raise
        except _ZIP_ERRORS as err:
            raise DataFormatError(f"{refuse} (unreadable zip archive: {err}; truncated or corrupt?)") from None
        try:
            meta = json.loads(str(arrays["provenance"]))
        except RecursionError:
            raise DataFormatError(f"{refuse}: member provenance.npy: JSON nested too deeply") from None
        except ValueError as err:
            raise DataFormatError(f"{refuse}: member provenance.npy: not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise DataFormatError(f"{refuse}: member provenance.npy holds a JSON {type(meta).__name__}, "
                                  "expected a JSON object")
        Z, P = arrays["Z"], arrays["P"]
        if meta.pop("format", None) != DICTIONARY_FORMAT:
            raise DataFormatError(f"{path}: dictionary format is not {DICTIONARY_FORMAT}")
        problem = _dictionary_problem(Z, P.reshape(-1) if P.ndim else P)
        if problem:
            raise DataFormatError(f"{path}: {problem}")
        return cls(Z, P, meta)


def _read_members(archive: zipfile.ZipFile, refuse: str) -> dict[str, np.ndarray]:
    """Z, P and provenance from an open ``.npz``, each checked against its zip record before reading.

    numpy allocates what a header declares before reading a zip member, so the declared size is
    compared with the zip's record (itself bounded) first; zipfile never inflates past that record.
    """
    infos = {info.filename: info for info in archive.infolist()}
    missing = sorted(key for key in _MEMBER_KINDS if f"{key}.npy" not in infos)
    if missing:
        raise DataFormatError(f"{refuse} (missing array(s) {missing})")
    arrays = {}
    for key, kinds in _MEMBER_KINDS.items():
        info = infos[f"{key}.npy"]
        where = f"{refuse}: member {info.filename}"
        if info.file_size > MAX_DICTIONARY_BYTES:
            raise DataFormatError(f"{where} would inflate to {info.file_size} bytes, above the bound of "
                                  f"{MAX_DICTIONARY_BYTES} bytes for a dictionary")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > MAX_COMPRESSION_RATIO:
            raise DataFormatError(f"{where} would inflate {ratio:.0f}-fold ({info.compress_size} -> "
                                  f"{info.file_size} bytes), above the bound of {MAX_COMPRESSION_RATIO}:1 "
                                  "(a zip bomb?)")
        with archive.open(info) as fh:
            shape, dtype, declared = read_npy_header(fh, where)
            header = fh.tell()
        if dtype.kind not in kinds or dtype.names is not None:
            expected = "numbers" if kinds == "fiu" else "one JSON string"
            raise DataFormatError(f"{where}: holds {dtype} values; {key} must be {expected}")
        if kinds == "U" and shape != ():
            raise DataFormatError(f"{where}: has shape {list(shape)}; {key} must be one JSON string")
        if header + declared != info.file_size:
            raise DataFormatError(f"{where}: the header declares shape {list(shape)} of {dtype} ({declared} "
                                  f"bytes) but the archive records {info.file_size - header} bytes of data")
        with archive.open(info) as fh:
            arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
    return arrays


def _dictionary_problem(Z: np.ndarray, P: np.ndarray) -> str | None:
    """Why (Z, P) is not a usable dictionary, or None."""
    if Z.ndim != 2 or Z.shape[0] < 1:
        return f"Z must be [N, d_z], got shape {Z.shape}"
    if P.shape != (Z.shape[0],):
        return f"P must hold one share per prototype ({Z.shape[0]}), got shape {P.shape}"
    if not (np.isfinite(Z).all() and np.isfinite(P).all()):
        return "Z or P holds NaN or infinite values"
    if (P < 0).any() or abs(float(P.sum()) - 1.0) > 1e-4:
        return f"P must be non-negative and sum to 1 (sums to {float(P.sum()):.6f})"
    return None


def build_dictionary(features: np.ndarray, n: int, *, seed: int = 0,
                     provenance: dict[str, Any] | None = None) -> tuple[ConfounderDictionary, ContextClusters]:
    """k-means on the *training* context features: Z = centroids, P = each cluster's share.

    Returns the dictionary and the fitted clusters (to assign other splits for analysis).
    """
    clusters = fit_context_clusters(features, n, seed=seed)
    dictionary = ConfounderDictionary(clusters.centroids(), clusters.prior(features), {
        **(provenance or {}), "n": int(n), "seed": int(seed), "samples": int(len(features)),
        "feature_dim": int(features.shape[1]), "prior": "cluster shares",
        "kmeans": type(clusters.kmeans).__name__})
    return dictionary, clusters
