"""The two plain models of notebook 01: a single-view probe and a subject+context two-stream net.

They are deliberately plain (no attention, no causal module) so that what they learn shows what the
data rewards. Both follow the interface every model in this repo has: ``features(batch) -> h`` and
``classifier(h) -> logits``, with ``forward = classifier(features(batch))``.
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.models.backbones import SmallCNN


class ViewProbe(nn.Module):
    """A classifier that sees one view only, e.g. ``context`` (subject masked) or ``subject``."""

    def __init__(self, num_classes: int, view: str = "context", widths=(16, 32, 64, 64)):
        super().__init__()
        self.view = view
        self.encoder = SmallCNN(widths)
        self.classifier = nn.Linear(self.encoder.out_dim, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        return self.encoder(batch[self.view])

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))


class TwoStream(nn.Module):
    """Subject crop and masked context, each through its own CNN, concatenated, one linear head."""

    def __init__(self, num_classes: int, widths=(16, 32, 64, 64)):
        super().__init__()
        self.subject_encoder = SmallCNN(widths)
        self.context_encoder = SmallCNN(widths)
        self.classifier = nn.Linear(self.subject_encoder.out_dim + self.context_encoder.out_dim, num_classes)

    def features(self, batch: dict) -> torch.Tensor:
        return torch.cat([self.subject_encoder(batch["subject"]), self.context_encoder(batch["context"])], dim=1)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))
