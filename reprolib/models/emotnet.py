"""EMOT-Net (Kosti et al., CVPR 2017 / TPAMI 2019): body and whole-image context, fused to 256-d.

Structure as in the widely used PyTorch port: two encoders (body crop; whole image), concatenation,
Linear -> 256 -> BatchNorm -> ReLU -> Dropout(0.5) gives the joint feature ``h``; ``classifier`` maps
``h`` to the 26 category scores and ``vad_head`` to valence/arousal/dominance.

Loss on multi-label (EMOTIC-style) data, as published: 0.5 * discrete + 0.5 * continuous, where the
discrete term is a squared error on the raw category scores weighted per class by the *dynamic*
weights 1 / ln(n_k + 1.2) (n_k = positives of class k in the batch; 1e-4 when n_k = 0), summed over
the batch, and the continuous term is a smooth-L1 (threshold 1) on the VAD values on their 1-10
scale, also summed.

Deviations, decided where the paper is silent or does not apply:

* on single-label (CAER-S-style) data the discrete loss becomes cross-entropy and there is no VAD
  head: the weighted squared error is a multi-label loss;
* the two encoders are configurable (the repo's small CNN at smoke size, torchvision ResNets at full
  size, Places365 weights for the context stream when a local file is given); the original used
  decomposed convolutions pretrained on Places and ImageNet.
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.models.backbones import build_encoder

JOINT_DIM = 256


def dynamic_weights(targets: torch.Tensor) -> torch.Tensor:
    """Per-class weights 1 / ln(n_k + 1.2) from the positives in this batch; 1e-4 for absent classes."""
    counts = targets.sum(dim=0)
    weights = 1.0 / torch.log(counts + 1.2)
    return torch.where(counts > 0, weights, torch.full_like(weights, 1e-4))


def discrete_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """EMOT-Net's dynamically weighted squared error, summed over batch and classes."""
    targets = targets.float()
    return (dynamic_weights(targets) * (scores - targets) ** 2).sum()


def continuous_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 with threshold 1 on the 1-10 scale (inputs are VAD / 10), summed."""
    return nn.functional.smooth_l1_loss(pred * 10, target * 10, reduction="sum", beta=1.0)


class EMOTNet(nn.Module):
    """Body + whole-image context -> 256-d joint feature -> category scores (+ VAD on EMOTIC)."""

    views = ("subject", "image")

    def __init__(self, num_classes: int, *, multilabel: bool = False, vad: bool | None = None,
                 body_backbone: str = "small", context_backbone: str = "small", context_weights=None,
                 dropout: float = 0.5):
        super().__init__()
        self.multilabel = multilabel
        self.target_key = "labels" if multilabel else "label"
        self.body_encoder = build_encoder(body_backbone)
        self.context_encoder = build_encoder(context_backbone, weights=context_weights)
        self.fusion = nn.Sequential(
            nn.Linear(self.body_encoder.out_dim + self.context_encoder.out_dim, JOINT_DIM),
            nn.BatchNorm1d(JOINT_DIM), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.feature_dim = JOINT_DIM
        self.classifier = nn.Linear(JOINT_DIM, num_classes)
        self.vad_head = nn.Linear(JOINT_DIM, 3) if (multilabel if vad is None else vad) else None

    def features(self, batch: dict) -> torch.Tensor:
        return self.fusion(torch.cat([self.body_encoder(batch["subject"]),
                                      self.context_encoder(batch["image"])], dim=1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))

    def training_loss(self, batch: dict) -> torch.Tensor:
        h = self.features(batch)
        scores = self.classifier(h)
        if not self.multilabel:
            return nn.functional.cross_entropy(scores, batch["label"])
        loss = 0.5 * discrete_loss(scores, batch["labels"])
        if self.vad_head is not None and "vad" in batch:
            loss = loss + 0.5 * continuous_loss(self.vad_head(h), batch["vad"])
        return loss
