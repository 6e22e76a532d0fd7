"""reprolib.data.prepare: the face boxes, pose keypoints and depth maps written from fabricated detector
outputs are read back by the real loaders with the values fabricated (no model weights, no downloads)."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from reprolib.data import prepare
from reprolib.data.caers import CAERS, CLASSES
from reprolib.data.emotic import Emotic, read_emotic_csv
from reprolib.data.synthetic import make_caer_s, make_emotic
from reprolib.data.views import DataFormatError, normalise_box
from reprolib.experiments import open_data
from reprolib.models.backbones import CheckpointError
from reprolib.models.emoticon import EmotiCon

CAER_SIZES = {"train": 14, "val": 7, "test": 7, "test_ood": 7}  # 2 / 1 frames per class, 32 px
EMOTIC_SIZES = {"train": 8, "val": 2, "test": 2, "test_ood": 2}  # images, 1-3 people each, 48 x 32 px
EMOTIC_WH = (48, 32)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synthetic")
    return {"caer": make_caer_s(base, sizes=CAER_SIZES, image_size=32),
            "emotic": make_emotic(base, sizes=EMOTIC_SIZES, image_size=EMOTIC_WH)}


@pytest.fixture
def caer(tmp_path, synthetic) -> Path:
    """A CAER-S folder as the real dataset ships it: frames, no face boxes."""
    root = tmp_path / "CAER-S"
    shutil.copytree(synthetic["caer"], root)
    shutil.rmtree(root / "face_boxes")
    return root


@pytest.fixture
def emotic(tmp_path, synthetic) -> Path:
    """An EMOTIC folder as the real dataset ships it: images and CSVs, no pose, no depth."""
    root = tmp_path / "EMOTIC"
    shutil.copytree(synthetic["emotic"], root)
    shutil.rmtree(root / "pose")
    shutil.rmtree(root / "depth")
    return root


def frames(root: Path, split: str) -> list[str]:
    return sorted(f"{p.parent.name}/{p.name}" for p in (root / split).glob("*/*.png"))


def by_key(ds: CAERS) -> dict[str, list[float] | None]:
    return {f"{CLASSES[int(r.target['label'])]}/{r.path.name}": r.box for r in ds.records}


def people(root: Path, split: str) -> dict[str, list[tuple[int, tuple[int, int, int, int]]]]:
    """{'Folder/Filename': [(CSV row, box as the loader clips it), ...]}."""
    out: dict[str, list] = {}
    for r, row in enumerate(read_emotic_csv(root / f"{split}.csv")):
        box, _ = normalise_box(row["box"], *row["size"], "test")
        out.setdefault(f"{row['folder']}/{row['filename']}", []).append((r, box))
    return out


def skeleton(rng: np.random.Generator, box) -> np.ndarray:
    """17 COCO keypoints inside ``box`` with confidences in (0, 1)."""
    x1, y1, x2, y2 = box
    return np.stack([rng.uniform(x1, x2, 17), rng.uniform(y1, y2, 17), rng.uniform(0.1, 1, 17)], axis=1)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="reprolib")
    prepare.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


# ----------------------------------------------------------------------------------------------------
# CAER-S face boxes
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", prepare.FACE_FORMATS)
def test_face_boxes_read_back_highest_score_and_no_face(caer, fmt):
    rels = frames(caer, "train")
    detections, expected = {}, {}
    for i, rel in enumerate(rels):
        if i % 4 == 0:  # absent from the detector's output
            expected[rel] = [0.0] * 4
            continue
        if i % 4 == 1:  # the detector found no face
            detections[rel] = []
            expected[rel] = [0.0] * 4
            continue
        best = [1.5 + i / 4, 2.25, 20.75, 25.5 - i / 8]
        detections[rel] = [([0, 0, 4, 4], 0.3), (best, 0.9), ([10, 10, 30, 30], 0.9), ([5, 5, 9, 9], 0.1)]
        expected[rel] = best  # highest score; of two equal, the first
    counts = prepare.write_face_boxes(caer, "train", detections, format=fmt)
    faces = sum(any(b) for b in expected.values())
    assert counts == {"images": len(rels), "with_face": faces, "without_face": len(rels) - faces, "other_split": 0}
    assert (caer / "face_boxes" / f"train.{fmt}").is_file()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every frame has a line: the loader has nothing to warn about
        ds = CAERS(caer, "train")
    assert by_key(ds) == expected
    assert ds.box_counts["given"] == faces and ds.box_counts["zero"] == len(rels) - faces
    assert ds.box_counts["none"] == 0
    has_box = {f"{CLASSES[int(item['label'])]}/{ds.records[i].path.name}": item["has_box"]
               for i, item in ((i, ds[i]) for i in range(len(ds)))}
    assert has_box == {rel: any(box) for rel, box in expected.items()}


def test_face_min_score_and_choose_rule():
    faces = [([0, 0, 5, 5], 0.2), ([1, 1, 6, 6], 0.4), ([2, 2, 7, 7], 0.4)]
    assert prepare.choose_face(faces, "x") == [1.0, 1.0, 6.0, 6.0]
    assert prepare.choose_face(faces, "x", min_score=0.5) is None
    assert prepare.choose_face([], "x") is None
    assert prepare.choose_face([([9, 9, 1, 1], -3.0)], "x") == [9.0, 9.0, 1.0, 1.0]  # any score scale; corners kept


def test_face_boxes_through_open_data_with_split_prefixes(caer):
    """One detections file for every split (paths start with the split); each split takes its own."""
    detections = {f"{split}/{rel}": [([2, 3, 20, 22], 0.8)] for split in ("train", "test")
                  for rel in frames(caer, split)}
    for split in ("train", "test"):
        counts = prepare.write_face_boxes(caer, split, detections, format="json")
        assert counts["with_face"] == counts["images"] == len(frames(caer, split))
        assert counts["other_split"] == len(frames(caer, "test" if split == "train" else "train"))
    shutil.rmtree(caer / "val")
    shutil.rmtree(caer / "test_ood")
    bundle = open_data("caer_s", data_root=caer)
    test = bundle.splits["test"]
    assert set(map(tuple, (r.box for r in test.records))) == {(2.0, 3.0, 20.0, 22.0)}
    assert test[0]["has_box"] and test[0]["subject"].shape == (3, 32, 32)


NAN = float("nan")


@pytest.mark.parametrize("detections, message", [
    ({"Anger/0001.png": [([0, 0, NAN, 5], 0.9)]}, r"'Anger/0001.png'.*non-finite"),
    ({"Anger/0001.png": [([0, 0, 5, 5], math.inf)]}, r"'Anger/0001.png'.*score inf is not finite"),
    ({"Joy/0001.png": [([0, 0, 5, 5], 0.9)]}, r"'Joy/0001.png'.*unknown class folder 'Joy'"),
    ({"Anger/9999.png": []}, r"'Anger/9999.png'.*names no image"),
    ({"Anger/0001.png": [([3, 3, 3, 9], 0.9)]}, r"'Anger/0001.png'.*no area"),
    ({"Anger/0001.png": [([1, 2, 3], 0.9)]}, r"'Anger/0001.png'.*box must have shape \[4\]"),
    ({"Anger/0001.png": [(["a", 1, 2, 3], 0.9)]}, r"'Anger/0001.png'.*box is not an array of numbers"),
    ({"Anger/0001.png": None}, r"'Anger/0001.png'.*expected a list of faces"),
    ({"Anger/0001.png": [], "train/Anger/0001.png": []}, r"'Anger/0001.png' and 'train/Anger/0001.png'"),
    ({"test/Anger/0001.png": []}, r"none of its 1 image"),
])
def test_face_bad_inputs_refused_naming_the_image(caer, detections, message):
    with pytest.raises(DataFormatError, match=message):
        prepare.write_face_boxes(caer, "train", detections, source="dets.json")
    assert not (caer / "face_boxes" / "train.txt").exists()  # nothing half-written


def test_face_formats_do_not_shadow_each_other(caer):
    prepare.write_face_boxes(caer, "train", {"Anger/0001.png": []})
    with pytest.raises(FileExistsError, match=r"train\.txt.*reads it before train\.json"):
        prepare.write_face_boxes(caer, "train", {"Anger/0001.png": []}, format="json")


def test_face_boxes_for_the_angry_spelling(caer):
    """Some releases spell the folder Angry: either spelling in the detections names its frames."""
    (caer / "train" / "Anger").rename(caer / "train" / "Angry")
    prepare.write_face_boxes(caer, "train", {"Anger/0001.png": [([1, 2, 9, 9], 1.0)],
                                             "Angry/0002.png": [([2, 3, 9, 9], 1.0)]})
    assert "Angry/0001.png,0,1.0,2.0,9.0,9.0" in (caer / "face_boxes" / "train.txt").read_text()
    boxes = by_key(CAERS(caer, "train"))
    assert boxes["Anger/0001.png"] == [1.0, 2.0, 9.0, 9.0] and boxes["Anger/0002.png"] == [2.0, 3.0, 9.0, 9.0]


def test_face_comma_in_file_name_needs_json(caer):
    (caer / "train" / "Anger" / "0001.png").rename(caer / "train" / "Anger" / "0,1.png")
    detections = {"Anger/0,1.png": [([4, 4, 20, 20], 1.0)]}
    with pytest.raises(DataFormatError, match=r"0,1\.png.*format='json'"):
        prepare.write_face_boxes(caer, "train", detections)
    prepare.write_face_boxes(caer, "train", detections, format="json")
    assert by_key(CAERS(caer, "train"))["Anger/0,1.png"] == [4.0, 4.0, 20.0, 20.0]


# ----------------------------------------------------------------------------------------------------
# EMOTIC pose
# ----------------------------------------------------------------------------------------------------

def fabricated_people(root: Path, split: str, seed: int = 0):
    """Per image: each annotated person's skeleton (box jittered) plus a confident decoy of lower IoU;
    the first image is left out and the second gets only a far-off detection."""
    rng = np.random.default_rng(seed)
    images = people(root, split)
    detections, truth = {}, {}
    for n, (image, members) in enumerate(images.items()):
        if n == 0:
            continue
        if n == 1:
            detections[image] = [([0, 0, 2, 2], 0.99, skeleton(rng, (0, 0, 2, 2)))]
            continue
        dets = []
        for r, box in members:
            kp = skeleton(rng, box)
            truth[r] = kp
            w = box[2] - box[0]
            dets.append(([box[0] + w / 2, box[1], box[2] + w / 2, box[3]], 0.99, skeleton(rng, box)))  # IoU 1/3
            dets.append(([box[0] + 0.3, box[1] - 0.2, box[2] - 0.1, box[3]], 0.6, kp))
        detections[image] = dets[::-1] if n % 2 else dets
    return detections, truth


def test_pose_read_back_coco_layout(emotic):
    detections, truth = fabricated_people(emotic, "train")
    counts = prepare.write_pose(emotic, "train", detections, layout="coco")
    rows = read_emotic_csv(emotic / "train.csv")
    assert counts["rows"] == len(rows) and counts["matched"] == len(truth)
    assert counts["unmatched"] == len(rows) - len(truth) and counts["unused_images"] == 0
    raw = np.load(emotic / "pose" / "train.npy")
    assert raw.dtype == np.float32 and raw.shape == (len(rows), 17, 3)

    ds = Emotic(emotic, "train", extra_views=("pose",))
    pose = ds.targets("pose").numpy()
    for r, row in enumerate(rows):
        box, _ = normalise_box(row["box"], *row["size"], "test")
        if r in truth:  # the detection of highest IoU, not the more confident decoy
            xy = (truth[r][:, :2] - box[:2]) / np.array([box[2] - box[0], box[3] - box[1]])
            np.testing.assert_allclose(pose[r, :, :2], xy, atol=1e-5)
            np.testing.assert_allclose(pose[r, :, 2], truth[r][:, 2], atol=1e-6)
        else:  # no matching detection: the all-zero "nothing seen" pose
            assert not pose[r].any()


def test_pose_emoticon_layout_feeds_the_model(emotic):
    detections, truth = fabricated_people(emotic, "train")
    prepare.write_pose(emotic, "train", detections)
    raw = np.load(emotic / "pose" / "train.npy")
    assert raw.shape[1:] == (10, 3)
    r = next(iter(truth))
    kp = truth[r]
    names = prepare.COCO_KEYPOINTS
    np.testing.assert_allclose(raw[r, 0], kp[names.index("nose")], rtol=1e-6)  # head
    shoulders = kp[[names.index("left_shoulder"), names.index("right_shoulder")]]
    np.testing.assert_allclose(raw[r, 1, :2], shoulders[:, :2].mean(axis=0), rtol=1e-6)  # neck
    assert raw[r, 1, 2] == pytest.approx(shoulders[:, 2].min())
    np.testing.assert_allclose(raw[r, 3], kp[names.index("right_wrist")], rtol=1e-6)  # r_hand

    ds = Emotic(emotic, "train", extra_views=("pose",))
    model = EmotiCon(26, multilabel=True, use_depth=False)  # default n_joints=10
    assert model.pose_encoder(ds.targets("pose")).shape == (len(ds), 64)


def test_match_people_rule():
    assert prepare.box_iou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    assert prepare.box_iou([0, 0, 2, 2], [5, 5, 6, 6]) == 0.0
    person = [[0, 0, 10, 10]]
    assert prepare.match_people(person, [[0, 0, 10, 6], [0, 0, 10, 9]], [0.99, 0.1]) == [1]  # IoU over score
    assert prepare.match_people(person, [[0, 0, 10, 2]]) == [None]  # IoU 0.2 < MIN_IOU
    assert prepare.match_people(person, [[0, 0, 10, 2]], min_iou=0.1) == [0]
    assert prepare.match_people(person, [[0, 0, 10, 8], [0, 0, 10, 8]], [0.5, 0.7]) == [1]  # IoU tie: score
    # Two people side by side: d0 fits p0 best and p1 second best; one skeleton per person.
    two = [[0, 0, 10, 10], [4, 0, 14, 10]]
    assert prepare.match_people(two, [[0, 0, 10, 10], [6, 0, 14, 10]]) == [0, 1]
    assert prepare.match_people(two, [[0, 0, 10, 10]]) == [0, None]


WHERE = r"people\.json \['synth/images/000001.jpg'\] person 0: "


@pytest.mark.parametrize("person, message", [
    (([0, 0, 5, 5], 0.9, np.zeros((16, 3))), r"keypoints must have shape \[17, 3\]"),
    (([0, 0, 5, 5], 0.9, np.full((17, 3), np.nan)), r"keypoints has a non-finite"),
    (([0, 0, 5, np.inf], 0.9, np.zeros((17, 3))), r"box has a non-finite"),
    (([0, 0, 5, 5], 0.9), r"expected \(box, score, keypoints"),
])
def test_pose_bad_detections_refused_naming_the_image(emotic, person, message):
    with pytest.raises(DataFormatError, match=WHERE + message):
        prepare.write_pose(emotic, "train", {"synth/images/000001.jpg": [person]}, source="people.json")
    assert not (emotic / "pose" / "train.npy").exists()


def test_pose_detections_of_another_split_refused(emotic):
    other = next(iter(people(emotic, "test")))
    with pytest.raises(DataFormatError, match=r"people\.json: none of its 1 image.*train\.csv"):
        prepare.write_pose(emotic, "train", {other: []}, source="people.json")
    with pytest.raises(DataFormatError, match=r"'synth/images/000001.jpg' and 'synth\\\\images/000001.jpg'"):
        prepare.write_pose(emotic, "train", {"synth/images/000001.jpg": [], "synth\\images/000001.jpg": []})


# ----------------------------------------------------------------------------------------------------
# EMOTIC depth
# ----------------------------------------------------------------------------------------------------

def ramps(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A disparity map per annotated image at the image's size, each at its own scale and shift."""
    rng = np.random.default_rng(seed)
    w, h = EMOTIC_WH
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    images = {image for split in prepare.EMOTIC_SPLITS for image in people(root, split)}
    return {image: rng.uniform(0.1, 50) * (yy + xx / 7 + rng.uniform(0, 3) * np.sin(xx / 5)) + rng.uniform(-9, 9)
            for image in sorted(images)}


def stretched(arr: np.ndarray) -> np.ndarray:
    return (arr - arr.min()) / (arr.max() - arr.min())


@pytest.mark.parametrize("kind", prepare.DEPTH_KINDS)
def test_depth_read_back_normalised_near_bright(emotic, kind):
    maps = ramps(emotic)
    counts = prepare.write_depth(emotic, maps, kind=kind)
    assert counts == {"images": len(maps), "written": len(maps), "missing": 0, "unused": 0}
    for split in prepare.EMOTIC_SPLITS:
        ds = Emotic(emotic, split, extra_views=("depth",), image_size=EMOTIC_WH[::-1])
        for i in range(len(ds)):
            rec = ds.records[i]
            image = f"{rec.path.parent.parent.name}/{rec.path.parent.name}/{rec.path.name}"
            want = stretched(maps[image]) if kind == "disparity" else 1 - stretched(maps[image])
            depth = ds[i]["depth"]
            assert depth.shape == (1, EMOTIC_WH[1], EMOTIC_WH[0])
            np.testing.assert_allclose(depth[0].numpy(), want, atol=0.5 / 255 + 1e-6)
    png = Image.open(emotic / "depth" / "synth" / "images" / "000001.png")
    assert png.mode == "L" and png.size == EMOTIC_WH


def test_depth_model_resolution_is_resized_to_the_image(emotic):
    maps = ramps(emotic)
    small = {k: torch.from_numpy(v[None, ::2, ::2].copy()) for k, v in maps.items()}  # MiDaS-like [1, H/2, W/2]
    del small["synth/images/000001.jpg"]
    small["synth/images/000001"] = torch.full((1, 16, 24), 3.0)  # by stem; a constant map: uninformative, all 0
    prepare.write_depth(emotic, small)
    for name in ("000001", "000002"):
        png = Image.open(emotic / "depth" / "synth" / "images" / f"{name}.png")
        assert png.size == EMOTIC_WH
        got = np.asarray(png, dtype=np.float64) / 255
        if name == "000001":
            assert not got.any()
        else:
            assert np.abs(got - stretched(maps[f"synth/images/{name}.jpg"])).mean() < 0.03


def test_depth_missing_unknown_and_bad_maps(emotic):
    maps = ramps(emotic)
    first = next(iter(maps))
    partial = {k: v for k, v in maps.items() if k != first}
    with pytest.raises(DataFormatError, match=r"no depth map for 1 of .*'synth/images/000001'.*allow_missing"):
        prepare.write_depth(emotic, partial)
    assert prepare.write_depth(emotic, partial, allow_missing=True)["missing"] == 1
    assert not (emotic / "depth" / "synth" / "images" / "000001.png").exists()
    with pytest.raises(DataFormatError, match=r"maps\.npz: none of its 1 image"):
        prepare.write_depth(emotic, {"other/x.jpg": maps[first]}, source="maps.npz")
    for bad, message in ((maps[first].T, "transposed"), (np.where(maps[first] > 5, np.nan, 0), "non-finite"),
                         (np.zeros((2, 32, 48)), r"shape \[N, N\]")):
        with pytest.raises(DataFormatError, match=rf"maps\.npz \['{first}'\]: .*{message}"):
            prepare.write_depth(emotic, {**maps, first: bad}, source="maps.npz")


# ----------------------------------------------------------------------------------------------------
# torchvision adapters and detector loading
# ----------------------------------------------------------------------------------------------------

def test_torchvision_adapters():
    faces = prepare.face_detections({"Anger/0001.png": {
        "boxes": torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8], [0, 0, 9, 9]]),
        "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 2, 1])}}, label=1)
    assert faces == {"Anger/0001.png": [([1.0, 2.0, 3.0, 4.0], pytest.approx(0.9)),
                                        ([0.0, 0.0, 9.0, 9.0], pytest.approx(0.7))]}
    kp = torch.rand(2, 17, 3)
    kp[..., 2] = 1  # torchvision's visibility flag
    logits = torch.linspace(-800, 800, 34).reshape(2, 17)
    out = {"boxes": torch.tensor([[0.0, 0, 4, 8], [1, 1, 5, 9]]), "scores": torch.tensor([0.95, 0.5]),
           "keypoints": kp, "keypoints_scores": logits}
    persons = prepare.person_detections({"a/b.jpg": out})["a/b.jpg"]
    assert [p[1] for p in persons] == pytest.approx([0.95, 0.5])
    np.testing.assert_allclose(persons[0][2][:, :2], kp[0, :, :2].numpy(), rtol=1e-6)
    np.testing.assert_allclose(persons[1][2][:, 2], torch.sigmoid(logits[1].double()).numpy(), atol=1e-12)
    no_logits = prepare.person_detections({"a/b.jpg": {k: v for k, v in out.items() if k != "keypoints_scores"}})
    assert (no_logits["a/b.jpg"][0][2][:, 2] == 1).all()
    with pytest.raises(DataFormatError, match=r"\['a/b.jpg'\]: detection dict lacks keypoints"):
        prepare.person_detections({"a/b.jpg": {"boxes": [], "scores": []}})
    with pytest.raises(DataFormatError, match=r"\['x.png'\]: scores must have shape \[3\]"):
        prepare.face_detections({"x.png": {"boxes": np.zeros((3, 4)), "scores": [1, 2]}})


class _FakeDetector(nn.Module):
    """Stands in for a torchvision detector: the one state-dict key the loader reads, and a forward."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        self.roi_heads = nn.Module()
        self.roi_heads.box_predictor = nn.Module()
        self.roi_heads.box_predictor.cls_score = nn.Linear(4, num_classes)
        self.seen: list[torch.Tensor] = []

    def forward(self, images):
        self.seen.extend(images)
        return [{"boxes": torch.tensor([[1.0, 1, 5, 5]]), "scores": torch.tensor([0.5])} for _ in images]


class _NotWeights:
    pass


def test_load_torchvision_detector_local_weights_only(tmp_path, monkeypatch):
    from torchvision.models import detection

    built = {}

    def builder(**kwargs):
        built.update(kwargs)
        return _FakeDetector(**kwargs)

    monkeypatch.setattr(detection, "fasterrcnn_resnet50_fpn", builder)
    source = _FakeDetector(num_classes=2)
    path = tmp_path / "faces.pth"
    torch.save({"model": source.state_dict(), "epoch": 3}, path)  # torchvision's reference-script layout
    model = prepare.load_torchvision_detector("fasterrcnn_resnet50_fpn", path)
    assert built == {"weights": None, "weights_backbone": None, "num_classes": 2}
    assert not model.training
    assert torch.equal(model.roi_heads.box_predictor.cls_score.weight, source.roi_heads.box_predictor.cls_score.weight)

    torch.save(_NotWeights(), tmp_path / "pickle.pth")
    with pytest.raises(CheckpointError, match=r"pickle\.pth: refused to load"):
        prepare.load_torchvision_detector("fasterrcnn_resnet50_fpn", tmp_path / "pickle.pth")
    torch.save({"unrelated.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth: does not fit fasterrcnn_resnet50_fpn"):
        prepare.load_torchvision_detector("fasterrcnn_resnet50_fpn", tmp_path / "other.pth", num_classes=2)


def test_detect_feeds_images_as_torchvision_expects(caer):
    model = _FakeDetector(num_classes=2)
    rels = frames(caer, "train")[:3]
    outputs = prepare.detect(model, caer / "train", rels, batch_size=2)
    assert list(outputs) == rels
    assert all(t.shape == (3, 32, 32) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
               for t in model.seen) and len(model.seen) == 3
    assert prepare.face_detections(outputs)[rels[0]] == [([1.0, 1.0, 5.0, 5.0], 0.5)]


# ----------------------------------------------------------------------------------------------------
# The command line, end to end on saved detector outputs
# ----------------------------------------------------------------------------------------------------

def test_cli_face_boxes(caer, tmp_path, capsys):
    rels = frames(caer, "train")
    outputs = {rel: {"boxes": torch.tensor([[3.0, 4, 21, 23], [0, 0, 8, 8]]), "scores": torch.tensor([0.7, 0.9]),
                     "labels": torch.tensor([1, 2]), "masks": torch.zeros(2, 1, 4, 4)} for rel in rels[1:]}
    saved = prepare.save_outputs(tmp_path / "faces.json", outputs)
    assert set(json.loads(saved.read_text())[rels[1]]) == {"boxes", "scores", "labels"}
    assert cli(["prepare-inputs", "face-boxes", "--root", str(caer), "--split", "train",
                "--detections", str(saved), "--label", "1"]) == 0
    assert f"with face {len(rels) - 1}, without face 1" in capsys.readouterr().out
    boxes = by_key(CAERS(caer, "train"))
    assert boxes[rels[0]] == [0.0] * 4 and {tuple(boxes[r]) for r in rels[1:]} == {(3.0, 4.0, 21.0, 23.0)}

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({rels[0]: {"boxes": [[0, 0, float("nan"), 4]], "scores": [1]}}))
    assert cli(["prepare-inputs", "face-boxes", "--root", str(caer), "--split", "train",
                "--detections", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and rels[0] in err and "non-finite" in err
    bad.write_text("{not json")
    assert cli(["prepare-inputs", "face-boxes", "--root", str(caer), "--split", "train",
                "--detections", str(bad)]) == 2
    assert f"{bad}: not a JSON detections file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli(["prepare-inputs"])
    assert stop.value.code == 2


def test_cli_pose_and_depth_then_open_data(emotic, tmp_path, capsys):
    people_json, maps = {}, ramps(emotic)
    rng = np.random.default_rng(1)
    for split in prepare.EMOTIC_SPLITS:
        for image, members in people(emotic, split).items():
            people_json[image] = {"boxes": [list(b) for _, b in members], "scores": [0.9] * len(members),
                                  "keypoints": [skeleton(rng, b).tolist() for _, b in members],
                                  "keypoints_scores": np.zeros((len(members), 17)).tolist()}
    saved = tmp_path / "people.json"
    saved.write_text(json.dumps(people_json))
    for split in prepare.EMOTIC_SPLITS:
        assert cli(["prepare-inputs", "pose", "--root", str(emotic), "--split", split, "--detections", str(saved)]) == 0
        assert "unmatched 0" in capsys.readouterr().out

    half = dict(list(maps.items())[: len(maps) // 2])
    np.savez(tmp_path / "maps.npz", **half)
    folder = tmp_path / "npy"
    for image, arr in list(maps.items())[len(maps) // 2:]:
        (folder / image).parent.mkdir(parents=True, exist_ok=True)
        np.save((folder / image).with_suffix(".npy"), arr)
    assert cli(["prepare-inputs", "depth", "--root", str(emotic), "--maps", str(tmp_path / "maps.npz")]) == 2
    assert "maps.npz: no depth map for" in capsys.readouterr().err
    assert cli(["prepare-inputs", "depth", "--root", str(emotic), "--maps", str(tmp_path / "maps.npz"),
                "--allow-missing"]) == 0
    assert cli(["prepare-inputs", "depth", "--root", str(emotic), "--maps", str(folder), "--allow-missing"]) == 0
    assert f"written {len(maps) - len(half)}" in capsys.readouterr().out.splitlines()[-1]

    bundle = open_data("emotic", data_root=emotic, extra_views=("pose", "depth"), image_size=EMOTIC_WH[::-1])
    test = bundle.splits["test"]
    item = test[0]
    assert item["pose"].shape == (10, 3) and np.allclose(item["pose"][:, 2], 0.5)  # sigmoid(0)
    rec = test.records[0]
    image = f"synth/images/{rec.path.name}"
    np.testing.assert_allclose(item["depth"][0].numpy(), stretched(maps[image]), atol=0.5 / 255 + 1e-6)
