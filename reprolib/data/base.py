"""A torch Dataset of (image, subject box, target) records that serves the subject/context views.

The format-specific loaders only parse their annotation files into :class:`Record` lists; opening,
box cleaning, masking, resizing, caching and normalisation happen here once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from reprolib.data.views import cut_views, normalise_box, open_rgb, to_float_views


@dataclass
class Record:
    """One sample: the image file, the raw subject box as annotated, and the target tensors."""

    path: Path
    box: Sequence[float] | None
    target: dict[str, Any]
    source: str  # where the annotation came from, for error messages ("file:line")
    meta: dict[str, Any] = field(default_factory=dict)


class SubjectContextDataset(Dataset):
    """Serves ``subject``, ``context`` (subject masked black), ``image`` and the target of each record.

    Sizes are an int (square) or (height, width). ``normalize`` applies ImageNet mean/std after
    masking. ``cache`` keeps the decoded uint8 views in memory, which makes later epochs of the small
    smoke datasets nearly free; leave it off for the full-size real datasets.
    """

    def __init__(self, records: list[Record], *, subject_size=32, context_size=48, image_size=48,
                 normalize: bool = False, cache: bool = False):
        self.records = records
        self.sizes = (subject_size, context_size, image_size)
        self.normalize = normalize
        self.cache = cache
        self._cached: dict[int, tuple[dict[str, torch.Tensor], bool]] = {}
        self.box_stats: Counter = Counter()  # repaired boxes among the samples loaded so far
        self._box_counted: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def _views(self, index: int) -> tuple[dict[str, torch.Tensor], bool]:
        if index in self._cached:
            return self._cached[index]
        rec = self.records[index]
        img = open_rgb(rec.path)
        box = None
        if rec.box is not None:
            box, fix = normalise_box(rec.box, img.width, img.height, f"{rec.source} ({rec.path.name})")
            if index not in self._box_counted:  # count each sample once, however often it is loaded
                self._box_counted.add(index)
                self.box_stats["reversed"] += fix.reversed
                self.box_stats["clipped"] += fix.clipped
        views = cut_views(img, box, *self.sizes)
        item = (views, box is not None)
        if self.cache:
            self._cached[index] = item
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        views, has_box = self._views(index)
        out: dict[str, Any] = to_float_views(views, self.normalize)
        out.update(self.records[index].target)
        out["has_box"] = has_box
        out["index"] = index
        return out

    def targets(self, key: str) -> torch.Tensor:
        """All values of one target (e.g. ``label``) stacked, without opening any image."""
        values = [r.target[key] for r in self.records]
        return torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)


def targets_of(data: Dataset, key: str = "label") -> torch.Tensor:
    """Targets of a dataset or of a ``Subset`` of one, read from the annotations, not the images."""
    if isinstance(data, torch.utils.data.Subset):
        return targets_of(data.dataset, key)[torch.as_tensor(data.indices)]
    return data.targets(key)


def records_of(data: Dataset) -> list[Record]:
    """The annotation records of a dataset or of a ``Subset`` of one, in the order it serves them."""
    if isinstance(data, torch.utils.data.Subset):
        parent = records_of(data.dataset)
        return [parent[i] for i in data.indices]
    return data.records


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split a seeded ``fraction`` of ``train`` off as validation (for datasets that ship no val split).

    Checkpoints are then selected on data drawn from the training distribution, never on a test split.
    """
    n = len(train)
    n_val = max(1, int(round(n * fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return (torch.utils.data.Subset(train, sorted(order[n_val:])),
            torch.utils.data.Subset(train, sorted(order[:n_val])))
