"""CAER-Net-S (Lee et al., ICCV 2019): a face stream, a context stream that never sees the face
(the face box is painted black), spatial attention over the context, and adaptive fusion weights.

Structure follows the paper and its best-known PyTorch reproduction:

* each encoder: five Conv3x3-BN-ReLU blocks, 3 -> 32 -> 64 -> 128 -> 256 -> 256 channels, max-pool
  after each of the first four;
* context attention: Conv3x3(256 -> 128)-BN-ReLU-Conv3x3(128 -> 1)-BN-ReLU, a softmax over the
  spatial positions, then the attention-weighted sum of the 256-channel context map;
* fusion: BatchNorm1d on each 256-d vector, a small MLP per stream (256 -> 128 -> 1) scores it, a
  softmax over the two scores weights the streams, the weighted vectors are concatenated (512) ->
  Linear(512 -> 128) -> ReLU -> Dropout(0.5): that 128-d vector is the joint feature ``h`` that
  ``classifier`` (Linear 128 -> K) reads and that CCIM and CLEF wrap.

``encoder="caer"`` builds the paper's encoders (``widths`` narrows them for smoke runs); any name
accepted by :func:`reprolib.models.backbones.build_encoder` (e.g. ``"resnet18"``) replaces them, in
which case the attention runs on that encoder's last feature map.
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.models.backbones import build_encoder

JOINT_DIM = 128


class CAEREncoder(nn.Module):
    """Five Conv-BN-ReLU blocks, max-pool after all but the last; ``feature_map`` keeps the map."""

    def __init__(self, widths=(32, 64, 128, 256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(prev, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            prev = width
        self.body = nn.Sequential(*layers)
        self.out_dim = prev

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))


def _encoder(name: str, widths, weights=None) -> nn.Module:
    return CAEREncoder(widths) if name == "caer" else build_encoder(name, weights=weights)


class SpatialAttention(nn.Module):
    """A softmax over positions of a feature map; returns the weighted sum and the attention map."""

    def __init__(self, channels: int, hidden: int = 128):
        super().__init__()
        self.score = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 3, padding=1), nn.BatchNorm2d(1), nn.ReLU(inplace=True))

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = fmap.shape
        attn = torch.softmax(self.score(fmap).view(b, h * w), dim=1).view(b, 1, h, w)
        return (fmap * attn).sum(dim=(2, 3)), attn


class CAERNetS(nn.Module):
    """Face crop + face-masked context with attention, adaptively weighted fusion -> 128-d -> classes."""

    views = ("subject", "context")

    def __init__(self, num_classes: int, *, encoder: str = "caer", widths=(32, 64, 128, 256, 256),
                 context_weights=None, dropout: float = 0.5, multilabel: bool = False):
        super().__init__()
        self.multilabel = multilabel
        self.target_key = "labels" if multilabel else "label"
        self.face_encoder = _encoder(encoder, widths)
        self.context_encoder = _encoder(encoder, widths, context_weights)
        d_face, d_ctx = self.face_encoder.out_dim, self.context_encoder.out_dim
        self.attention = SpatialAttention(d_ctx)
        self.face_norm, self.context_norm = nn.BatchNorm1d(d_face), nn.BatchNorm1d(d_ctx)
        self.face_score = nn.Sequential(nn.Linear(d_face, 128), nn.ReLU(inplace=True), nn.Linear(128, 1))
        self.context_score = nn.Sequential(nn.Linear(d_ctx, 128), nn.ReLU(inplace=True), nn.Linear(128, 1))
        self.fusion = nn.Sequential(nn.Linear(d_face + d_ctx, JOINT_DIM), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout))
        self.feature_dim = JOINT_DIM
        self.classifier = nn.Linear(JOINT_DIM, num_classes)

    def streams(self, batch: dict) -> dict[str, torch.Tensor]:
        """Everything the fusion sees, for analysis: stream vectors, fusion weights, attention map."""
        face = self.face_norm(self.face_encoder(batch["subject"]))
        context, attn = self.attention(self.context_encoder.feature_map(batch["context"]))
        context = self.context_norm(context)
        weights = torch.softmax(torch.cat([self.face_score(face), self.context_score(context)], dim=1), dim=1)
        return {"face": face, "context": context, "weights": weights, "attention": attn}

    def features(self, batch: dict) -> torch.Tensor:
        s = self.streams(batch)
        w = s["weights"]
        return self.fusion(torch.cat([s["face"] * w[:, :1], s["context"] * w[:, 1:]], dim=1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))
