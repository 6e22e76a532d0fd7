"""Image encoders shared by every model: a small CNN for smoke size and torchvision ResNets for full size.

Every encoder built by :func:`build_encoder` has the same interface, so a baseline is written once and
runs with any of them:

* ``out_dim``: the channel width of the last feature map = the width of the pooled feature;
* ``feature_map(x) -> [B, out_dim, h, w]``: the last feature map before pooling (for spatial attention,
  as in CAER-Net, or region features);
* ``forward(x) -> [B, out_dim]``: the global average pool of ``feature_map(x)``.

For multi-scale models (CD-Net), :func:`stage_features` returns the pooled outputs of an encoder's last
stages and :func:`stage_widths` their channel widths, for both encoder kinds.

ResNets are built with ``weights=None`` (nothing is downloaded, ever). Pretrained weights come only from
a local file: :func:`load_places365` reads the CSAIL Places365 checkpoints (``resnet18_places365.pth.tar``
and friends) that EMOT-Net and CLEF use for their context stream. The ResNet encoder keeps torchvision's
parameter names (``conv1.weight``, ``layer1.0.bn1.running_mean``, ...), minus ``fc``, so a torchvision
or Places365 state dict loads into it after dropping the classifier.
"""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["ENCODER_NAMES", "CheckpointError", "ResNetEncoder", "SmallCNN", "build_encoder",
           "load_places365", "stage_features", "stage_widths"]

# name -> pooled width; "small" uses SmallCNN's default widths
ENCODER_NAMES: tuple[str, ...] = ("small", "resnet18", "resnet34", "resnet50", "resnet152")
_RESNET_OUT_DIM = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet152": 2048}


class CheckpointError(ValueError):
    """A weights file that cannot be used: unreadable, unsafe to unpickle, or with the wrong keys."""


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

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output ``[B, out_dim, H / 2**n, W / 2**n]`` (n = number of blocks)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its ``fc``: stem + four stages, then global average pooling.

    The submodules are attributes of this module under torchvision's own names, so the state dict keys
    are exactly torchvision's minus ``fc.*``. Total stride 32: a 224 px input gives a 7x7 map, 64 px 2x2.
    """

    def __init__(self, name: str, in_channels: int = 3):
        super().__init__()
        if name not in _RESNET_OUT_DIM:
            raise ValueError(f"unknown ResNet {name!r}; choose one of {sorted(_RESNET_OUT_DIM)}")
        import torchvision  # here, not at the top: importing it costs a smoke notebook about 1.7 s

        net = getattr(torchvision.models, name)(weights=None)
        if in_channels != 3:
            # same geometry as torchvision's stem, different input width (no pretrained weights fit it)
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.name = name
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = net.fc.in_features
        assert self.out_dim == _RESNET_OUT_DIM[name]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.avgpool(self.feature_map(x)).flatten(1)


def build_encoder(name: str, *, weights: str | Path | None = None, in_channels: int = 3,
                  widths: tuple[int, ...] | None = None) -> nn.Module:
    """An image encoder by name: ``"small"`` (:class:`SmallCNN`) or ``"resnet18/34/50/152"``.

    ``weights``: path to a local Places365 checkpoint (see :func:`load_places365`), ResNets only;
    ``None`` leaves the random initialisation. ``in_channels`` other than 3 changes the first conv
    (so 3-channel pretrained weights no longer fit it). ``widths`` sets the small CNN's block widths
    (narrower encoders for smoke runs); it does not apply to ResNets.
    """
    if name not in ENCODER_NAMES:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")
    if name == "small":
        if weights is not None:
            raise ValueError("weights= loads a Places365 ResNet checkpoint; the 'small' encoder has none "
                             "(choose a ResNet, or load a checkpoint of this repo with load_state_dict)")
        return SmallCNN(tuple(widths), in_channels=in_channels) if widths else SmallCNN(in_channels=in_channels)
    if widths is not None:
        raise ValueError(f"widths= narrows the 'small' encoder only, not {name!r}")
    encoder = ResNetEncoder(name, in_channels=in_channels)
    if weights is not None:
        load_places365(encoder, weights)
    return encoder


def _stages(encoder: nn.Module) -> list[tuple[nn.Module, int]]:
    """The encoder cut into its stages, each with the channel width of its output.

    :class:`SmallCNN`: one stage per Conv-BN-ReLU-MaxPool block. :class:`ResNetEncoder`: the stem
    (conv1-bn1-relu-maxpool) followed by ``layer1`` forms the first stage, then ``layer2`` .. ``layer4``.
    Running the stages in order computes exactly ``encoder.feature_map``.
    """
    if isinstance(encoder, SmallCNN):
        blocks = [encoder.body[i:i + 4] for i in range(0, len(encoder.body), 4)]
        return [(block, block[0].out_channels) for block in blocks]
    if isinstance(encoder, ResNetEncoder):
        stem = nn.Sequential(encoder.conv1, encoder.bn1, encoder.relu, encoder.maxpool, encoder.layer1)
        stages = [stem, encoder.layer2, encoder.layer3, encoder.layer4]
        # the last BatchNorm of a stage (bn2 of a BasicBlock, bn3 of a Bottleneck) has its output width
        return [(stage, [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features)
                for stage in stages]
    raise TypeError(f"stage_features supports SmallCNN and ResNetEncoder, not {type(encoder).__name__}")


def stage_widths(encoder: nn.Module, n_last: int = 2) -> list[int]:
    """Channel widths of the outputs of the last ``n_last`` stages, shallowest first.

    ``"small"`` (default widths): ``[64, 64]``; ``"resnet18/34"``: ``[256, 512]`` (layer3, layer4);
    ``"resnet50/152"``: ``[1024, 2048]``. The last entry is always ``encoder.out_dim``.
    """
    stages = _stages(encoder)
    if not 1 <= n_last <= len(stages):
        raise ValueError(f"n_last must be in 1..{len(stages)}, got {n_last}")
    return [width for _, width in stages[-n_last:]]


def stage_features(encoder: nn.Module, x: torch.Tensor, n_last: int = 2) -> list[torch.Tensor]:
    """Globally average-pooled outputs of the last ``n_last`` stages: a list of ``[B, C_s]``, shallowest first.

    One pass through the encoder (same computation as ``feature_map``); widths as in :func:`stage_widths`.
    SmallCNN: outputs of its last ``n_last`` blocks; ResNet: of ``layer3``, ``layer4`` for ``n_last=2``.
    The last entry equals ``encoder(x)``.
    """
    stages = _stages(encoder)
    if not 1 <= n_last <= len(stages):
        raise ValueError(f"n_last must be in 1..{len(stages)}, got {n_last}")
    pooled = []
    for i, (stage, _) in enumerate(stages):
        x = stage(x)
        if i >= len(stages) - n_last:
            pooled.append(x.mean(dim=(2, 3)))
    return pooled


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``, every failure turned into an error naming the file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    convert = ("If you trust the file, convert it once yourself: load it with weights_only=False, take "
               "its state dict (checkpoint['state_dict'], or model.state_dict() for a pickled model), "
               "torch.save that dict and pass the new file.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL (\S+) was not an allowed global", text) or re.search(
            r"whose module (\S+) is blocked", text)
        if found:
            raise CheckpointError(
                f"{path}: refused to load: the file pickles the Python object {found.group(1)}, and "
                f"weights_only=True only reads tensors and plain containers because unpickling anything "
                f"else can run code. {convert}") from None
        after = text.split("WeightsUnpickler error:", 1)[-1]
        detail = next((line.strip() for line in after.splitlines() if line.strip()), type(exc).__name__)
        raise CheckpointError(
            f"{path}: cannot read checkpoint with weights_only=True ({detail}): the file is not a PyTorch "
            f"checkpoint, is corrupt, or uses pickle features that safe loading refuses. {convert}") from None
    except RuntimeError as exc:
        if "legacy .tar format" in str(exc):
            raise CheckpointError(
                f"{path}: saved in PyTorch's legacy .tar serialization, which cannot be read with "
                f"weights_only=True. {convert}") from None
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc
    except (EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {type(exc).__name__}: {exc}") from exc


def _state_dict_of(obj: Any, path: Path) -> Mapping[str, torch.Tensor]:
    """The tensors of a checkpoint: ``obj["state_dict"]`` (the CSAIL layout) or ``obj`` itself."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict (a state dict, or a checkpoint with a 'state_dict' "
                              f"key), got {type(obj).__name__}")
    if "state_dict" in obj:
        obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{path}: 'state_dict' holds a {type(obj).__name__}, not a dict of tensors")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: not a state dict: {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} "
                              f"that are not name -> tensor, e.g. {[str(k) for k in bad[:5]]} "
                              f"(expected a dict of tensors or a checkpoint with a 'state_dict' key)")
    return obj


def _key_list(keys: list[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], *,
                        optional=lambda key: False) -> list[str]:
    """Why ``state`` cannot load into a module whose state dict is ``expected``: phrases naming the
    missing keys (except ``optional`` ones), the unexpected keys and the keys of the wrong shape
    (file vs module). Empty when it fits, so every checkpoint loader reports a misfit the same way."""
    missing = [k for k in expected if k not in state and not optional(k)]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_key_list(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_key_list(unexpected)}")
    if mis_shaped:
        parts.append(f"{len(mis_shaped)} key(s) with the wrong shape (file vs module): {_key_list(mis_shaped)}")
    return parts


def load_places365(encoder: nn.Module, path: str | Path) -> nn.Module:
    """Load a local CSAIL Places365 ResNet checkpoint into ``encoder`` (a :class:`ResNetEncoder`).

    Accepted layouts: the released ``.pth.tar`` (a dict with ``state_dict`` whose keys carry the
    ``module.`` prefix of ``DataParallel``), or a bare state dict, with or without the prefix. The file
    is read with ``torch.load(map_location="cpu", weights_only=True)``: a file that needs arbitrary
    unpickling (e.g. the "whole model" pickles) is refused with :class:`CheckpointError`. The 365-way
    ``fc.*`` classifier is dropped; every other key must match the encoder exactly (names and shapes),
    else :class:`CheckpointError` lists the missing / unexpected / mis-shaped keys. BatchNorm
    ``num_batches_tracked`` counters may be absent (checkpoints from PyTorch < 0.4 lack them; they do
    not affect the computation). Files in PyTorch's pre-2017 ``.tar`` serialization cannot be read
    with ``weights_only=True`` at all; the error then says how to convert a trusted file once.
    Returns ``encoder``.
    """
    path = Path(path)
    state = _state_dict_of(_read_checkpoint(path), path)
    cleaned: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith("fc."):
            continue
        cleaned[key] = value
    expected = encoder.state_dict()
    parts = state_dict_mismatch(expected, cleaned, optional=lambda key: key.endswith("num_batches_tracked"))
    if parts:
        arch = getattr(encoder, "name", type(encoder).__name__)
        raise CheckpointError(f"{path}: does not fit the {arch} encoder (after stripping 'module.' and "
                              f"dropping 'fc.*'): " + "; ".join(parts))
    for key in expected:  # old checkpoints: keep the encoder's own counters
        if key.endswith("num_batches_tracked") and key not in cleaned:
            cleaned[key] = expected[key]
    encoder.load_state_dict(cleaned, strict=True)
    return encoder
