"""Encoders: one interface for every name; Places365 checkpoints load safely and strictly."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch
import torchvision

from reprolib.models.backbones import (ENCODER_NAMES, CheckpointError, ResNetEncoder, SmallCNN, build_encoder,
                                       load_places365)

OUT_DIM = {"small": 64, "resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet152": 2048}


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_every_encoder_has_out_dim_forward_and_feature_map_shapes(name):
    # on the meta device: shapes are propagated without any arithmetic, so even resnet152 at the
    # paper's 224 px costs nothing
    with torch.device("meta"):
        enc = build_encoder(name).eval()
        x = torch.empty(2, 3, 224, 224)
        fmap, pooled = enc.feature_map(x), enc(x)
    side = 224 // 16 if name == "small" else 224 // 32  # SmallCNN: 4 max-pools; ResNet: total stride 32
    assert enc.out_dim == OUT_DIM[name]
    assert fmap.shape == (2, enc.out_dim, side, side) and pooled.shape == (2, enc.out_dim)


# real arithmetic, one image; resnet152 is left to the meta test above (seconds on a busy 2-core CPU)
@pytest.mark.parametrize("name, side_in", [("small", 64), ("resnet18", 64), ("resnet34", 64), ("resnet50", 32)])
def test_forward_is_the_average_pool_of_the_feature_map(name, side_in):
    torch.manual_seed(0)
    enc = build_encoder(name).eval()
    x = torch.randn(1, 3, side_in, side_in)
    with torch.no_grad():
        fmap, pooled = enc.feature_map(x), enc(x)
    side = side_in // 16 if name == "small" else side_in // 32
    assert fmap.shape == (1, enc.out_dim, side, side) and pooled.shape == (1, enc.out_dim)
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))
    assert torch.isfinite(pooled).all()


def test_resnet_batches_and_in_channels():
    enc = build_encoder("resnet18", in_channels=1).eval()
    assert enc.conv1.in_channels == 1
    with torch.no_grad():
        assert enc(torch.randn(3, 1, 48, 48)).shape == (3, 512)
    assert build_encoder("small", in_channels=4)(torch.randn(2, 4, 32, 32)).shape == (2, 64)


def test_resnet_encoder_keeps_torchvision_names_without_fc():
    enc = build_encoder("resnet18")
    assert isinstance(enc, ResNetEncoder) and enc.name == "resnet18"
    ours = set(enc.state_dict())
    theirs = set(torchvision.models.resnet18(weights=None).state_dict())
    assert ours == {k for k in theirs if not k.startswith("fc.")}


def test_small_cnn_unchanged_for_notebook_01():
    torch.manual_seed(0)
    enc = SmallCNN((8, 16))
    assert isinstance(build_encoder("small"), SmallCNN) and enc.out_dim == 16
    x = torch.randn(2, 3, 16, 16)
    assert enc(x).shape == (2, 16) and enc.feature_map(x).shape == (2, 16, 4, 4)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown encoder 'vgg16'.*small, resnet18, resnet34, resnet50, resnet152"):
        build_encoder("vgg16")
    with pytest.raises(ValueError, match="'small' encoder has none"):
        build_encoder("small", weights="whatever.pth")


# ---------------------------------------------------------------------------------------------------
# Places365 checkpoints


def _places_checkpoint(arch: str = "resnet18", seed: int = 1) -> tuple[dict, dict]:
    """A CSAIL-style checkpoint: DataParallel 'module.' keys, a 365-way fc, wrapped with metadata."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=365)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    assert state["module.fc.weight"].shape[0] == 365
    return {"epoch": 1, "arch": arch, "best_prec1": torch.tensor(53.2), "state_dict": state}, net.state_dict()


def test_places365_checkpoint_loads_and_the_weights_land(tmp_path):
    ckpt, original = _places_checkpoint()
    path = tmp_path / "resnet18_places365.pth.tar"
    torch.save(ckpt, path)
    enc = build_encoder("resnet18", weights=path)
    torch.testing.assert_close(enc.layer3[1].conv2.weight, original["layer3.1.conv2.weight"])
    torch.testing.assert_close(enc.bn1.running_var, original["bn1.running_var"])
    # and a fresh encoder really differs, so the comparison means something
    assert not torch.equal(build_encoder("resnet18").layer3[1].conv2.weight, original["layer3.1.conv2.weight"])


def test_bare_state_dicts_with_or_without_prefix_and_old_formats(tmp_path):
    _, original = _places_checkpoint(seed=2)
    bare = tmp_path / "bare.pth"
    torch.save(original, bare)  # no 'state_dict' wrapper, no 'module.' prefix, fc still there
    enc = load_places365(build_encoder("resnet18"), bare)
    torch.testing.assert_close(enc.conv1.weight, original["conv1.weight"])

    # a pre-0.4 checkpoint has no BatchNorm num_batches_tracked counters; written in the old
    # (non-zip) serialization, which weights_only=True still reads
    old = {f"module.{k}": v for k, v in original.items() if not k.endswith("num_batches_tracked")}
    legacy = tmp_path / "legacy.pth.tar"
    torch.save({"state_dict": old}, legacy, _use_new_zipfile_serialization=False)
    enc = load_places365(build_encoder("resnet18"), str(legacy))
    torch.testing.assert_close(enc.layer4[0].downsample[1].bias, original["layer4.0.downsample.1.bias"])


def test_wrong_keys_fail_naming_the_file_and_the_keys(tmp_path):
    ckpt, _ = _places_checkpoint("resnet34")  # resnet34 has more blocks per stage than resnet18
    path = tmp_path / "resnet34_places365.pth.tar"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        build_encoder("resnet18", weights=path)
    msg = str(err.value)
    assert str(path) in msg and "resnet18" in msg
    # resnet34 has 8 more BasicBlocks (3-4-6-3 vs 2-2-2-2), 12 entries each; listed sorted, the first 8 shown
    assert "96 unexpected key(s): layer1.2.bn1.bias, layer1.2.bn1.num_batches_tracked" in msg
    assert "... and 88 more" in msg and "missing" not in msg

    state = dict(ckpt["state_dict"])
    del state["module.layer2.0.bn1.weight"]
    state["module.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): layer2\.0\.bn1\.weight") as err:
        load_places365(build_encoder("resnet34"), path)
    assert "extra.weight" in str(err.value) and str(path) in str(err.value)


def test_wrong_shapes_fail_clearly(tmp_path):
    ckpt, _ = _places_checkpoint()
    path = tmp_path / "r18.pth.tar"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"wrong shape .*conv1\.weight \(64, 3, 7, 7\) vs \(64, 1, 7, 7\)"):
        build_encoder("resnet18", weights=path, in_channels=1)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope" / "resnet18_places365.pth.tar"
    with pytest.raises(FileNotFoundError, match="resnet18_places365.pth.tar"):
        build_encoder("resnet18", weights=missing)


class Payload:
    """Stands for any Python object in a pickle; unpickling it would call ``_touch``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


def _touch(path: str) -> None:
    Path(path).write_text("code ran")


class Plain:
    """A custom class: its instances pickle by reference to the class."""


@pytest.mark.parametrize("kind", ["instance", "code"])
def test_arbitrary_objects_are_refused_and_never_run(tmp_path, kind):
    marker = tmp_path / "ran.txt"
    ckpt, _ = _places_checkpoint()
    ckpt["extra"] = Plain() if kind == "instance" else Payload(marker)  # Payload would call _touch
    global_name = "Plain" if kind == "instance" else "_touch"
    path = tmp_path / "evil.pth.tar"
    torch.save(ckpt, path)
    refused = rf"evil.pth.tar: refused to load: .*\.{global_name}, .*weights_only=True"
    with pytest.raises(CheckpointError, match=refused):
        build_encoder("resnet18", weights=path)
    assert not marker.exists()  # the payload's code was not executed


def test_unreadable_and_non_state_dict_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth: cannot read checkpoint"):
        build_encoder("resnet18", weights=junk)

    old_tar = tmp_path / "ancient.pth.tar"  # PyTorch's pre-2017 tar serialization
    with tarfile.open(old_tar, "w") as tar:
        (tmp_path / "storages").write_bytes(b"")
        tar.add(tmp_path / "storages", arcname="storages")
    with pytest.raises(CheckpointError, match=r"ancient.pth.tar: saved in PyTorch's legacy .tar"):
        build_encoder("resnet18", weights=old_tar)

    listy = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listy)
    with pytest.raises(CheckpointError, match="list.pth: expected a dict"):
        build_encoder("resnet18", weights=listy)

    nested = tmp_path / "nested.pth"
    torch.save({"epoch": 3, "conv1.weight": torch.zeros(1)}, nested)
    with pytest.raises(CheckpointError, match=r"nested.pth: not a state dict: 1 entry .*'epoch'"):
        build_encoder("resnet18", weights=nested)
