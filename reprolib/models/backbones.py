"""Image encoders shared by every model: a small CNN for smoke size (ResNets come with the baselines)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-MaxPool blocks then global average pooling: a few thousand images/s on a laptop CPU.

    ``out_dim`` is the last width; inputs of any size of at least 2**len(widths) pixels work.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 64), in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            layers += [nn.Conv2d(prev, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = width
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)
