"""CAER-S loader on tiny fixtures in the real on-disk formats, and the synthetic CAER-S generator."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reprolib.data import synthetic
from reprolib.data.caers import CAERS, CLASSES, open_caers_splits, read_face_boxes
from reprolib.data.views import DataFormatError

W, H = 60, 40  # fixture frames: wide like real CAER-S, small for speed


def _frame(path: Path, colour=(200, 100, 50)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((H, W, 3), dtype=np.uint8)
    arr[:] = colour
    arr[10:30, 20:40] = (250, 250, 250)  # the "face"
    Image.fromarray(arr).save(path)


@pytest.fixture
def caer_root(tmp_path: Path) -> Path:
    """train uses the Angry spelling, test uses Anger, as in the real releases; one file per class."""
    root = tmp_path / "CAER-S"
    for split, anger in (("train", "Angry"), ("test", "Anger")):
        lines = []
        for label, cls in enumerate(CLASSES):
            folder = anger if cls == "Anger" else cls
            _frame(root / split / folder / "0001.png")
            lines.append(f"{split}/{folder}/0001.png,{label},20,10,40,30")
        _frame(root / split / "Happy" / "0002.png")
        lines.append(f"{split}/Happy/0002.png,3,0,0,0,0")            # no face found
        _frame(root / split / "Sad" / "0002.png")
        lines.append(f"{split}/Sad/0002.png,5,40,30,20,10")          # reversed corners
        _frame(root / split / "Fear" / "0002.png")
        lines.append(f"{split}/Fear/0002.png,2,50,-5,70,20")         # past the border
        (root / "face_boxes").mkdir(exist_ok=True)
        (root / "face_boxes" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_reads_the_folder_layout_with_angry_alias(caer_root):
    train = CAERS(caer_root, "train")
    test = CAERS(caer_root, "test")
    assert len(train) == len(test) == 10
    assert sorted(set(train.labels.tolist())) == list(range(7))
    anger = [r for r in train.records if r.path.parent.name == "Angry"]
    assert anger and all(r.target["label"] == 0 for r in anger)


def test_views_mask_the_face_black_before_normalisation(caer_root):
    ds = CAERS(caer_root, "train", subject_size=20, context_size=(40, 60), image_size=(40, 60))
    item = ds[[r.path.name for r in ds.records].index("0001.png")]
    assert item["subject"].shape == (3, 20, 20)
    assert item["context"].shape == (3, 40, 60) and item["image"].shape == (3, 40, 60)
    assert torch.all(item["context"][:, 12:28, 22:38] == 0)             # the face box is black
    assert torch.all(item["image"][:, 12:28, 22:38] > 0.9)              # and white in the full image
    assert torch.allclose(item["context"][:, :5, :5], item["image"][:, :5, :5])
    assert torch.all(item["subject"] > 0.9)                              # the crop is the face
    assert item["has_box"] is True


def test_box_quirks_are_repaired_and_counted(caer_root):
    ds = CAERS(caer_root, "train")
    assert ds.box_counts["zero"] == 1
    by_name = {(r.path.parent.name, r.path.name): i for i, r in enumerate(ds.records)}
    no_face = ds[by_name[("Happy", "0002.png")]]
    assert no_face["has_box"] is False
    assert torch.equal(no_face["context"], no_face["image"])            # nothing masked
    reversed_item = ds[by_name[("Sad", "0002.png")]]
    assert reversed_item["has_box"] and torch.all(reversed_item["subject"] > 0.9)
    ds[by_name[("Fear", "0002.png")]]
    ds[by_name[("Fear", "0002.png")]]  # a second epoch does not count the same box again
    assert ds.box_stats["reversed"] == 1 and ds.box_stats["clipped"] == 1


def test_json_face_box_format(caer_root):
    boxes = {f"{'Anger' if c == 'Anger' else c}/0001.png": [20.0, 10.0, 40.0, 30.0] for c in CLASSES}
    path = caer_root / "face_boxes" / "test.json"
    path.write_text(json.dumps(boxes))
    with pytest.warns(UserWarning, match="no face box"):
        ds = CAERS(caer_root, "test", face_boxes=path)
    assert ds.box_counts["given"] == 7 and ds.box_counts["none"] == 3
    assert read_face_boxes(path)[("Anger", "0001.png")] == [20.0, 10.0, 40.0, 30.0]


def test_without_boxes_only_when_asked(caer_root):
    shutil.rmtree(caer_root / "face_boxes")
    with pytest.raises(DataFormatError, match="face_boxes"):
        CAERS(caer_root, "train")
    ds = CAERS(caer_root, "train", face_boxes=False)
    assert not any(ds[i]["has_box"] for i in range(len(ds)))


@pytest.mark.parametrize("problem, mutate, message", [
    ("missing split", lambda root: shutil.rmtree(root / "train"), "split folder is missing"),
    ("unknown class", lambda root: (root / "train" / "Bored").mkdir(), "unknown class folder 'Bored'"),
    ("short box line", lambda root: _append(root / "face_boxes" / "train.txt", "train/Sad/0001.png,5,1,2"),
     "train.txt:11: expected"),
    ("text in a number", lambda root: _append(root / "face_boxes" / "train.txt", "train/Sad/0001.png,5,a,2,3,4"),
     "train.txt:11: label and coordinates"),
    ("label disagrees with folder", lambda root: _append(root / "face_boxes" / "train.txt",
                                                        "train/Sad/0001.png,3,1,2,3,4"), "does not match"),
    ("bad json", lambda root: (root / "face_boxes" / "train.txt").rename(root / "face_boxes" / "train.json")
     or (root / "face_boxes" / "train.json").write_text("{not json"), "train.json: not valid JSON"),
])
def test_bad_input_names_the_file_and_problem(caer_root, problem, mutate, message):
    mutate(caer_root)
    with pytest.raises(DataFormatError, match=message):
        CAERS(caer_root, "train")


def _append(path: Path, line: str) -> None:
    with path.open("a") as fh:
        fh.write(line + "\n")


def test_corrupt_image_and_box_outside_image_fail_when_loaded(caer_root):
    bad = caer_root / "train" / "Disgust" / "0001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    boxes = caer_root / "face_boxes" / "train.txt"
    boxes.write_text(boxes.read_text().replace("train/Neutral/0001.png,4,20,10,40,30",
                                               "train/Neutral/0001.png,4,100,100,120,120"))
    ds = CAERS(caer_root, "train")
    names = [(r.path.parent.name, r.path.name) for r in ds.records]
    with pytest.raises(DataFormatError, match=r"0001.png: cannot decode image"):
        ds[names.index(("Disgust", "0001.png"))]
    with pytest.raises(DataFormatError, match="no area inside the 60x40 image"):
        ds[names.index(("Neutral", "0001.png"))]


def test_missing_val_is_carved_from_train_and_test_ood_is_optional(caer_root):
    splits = open_caers_splits(caer_root, val_fraction=0.2, seed=0)
    assert set(splits) == {"train", "val", "test"}
    assert len(splits["train"]) + len(splits["val"]) == 10 and len(splits["val"]) == 2
    assert not set(splits["train"].indices) & set(splits["val"].indices)


# --- the synthetic generator -------------------------------------------------------------------

SMALL = dict(sizes={"train": 28, "val": 14, "test": 14, "test_ood": 28}, image_size=40)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generator_is_deterministic_and_seed_dependent(tmp_path):
    a = synthetic.make_caer_s(tmp_path / "a", seed=3, **SMALL)
    b = synthetic.make_caer_s(tmp_path / "b", seed=3, **SMALL)
    c = synthetic.make_caer_s(tmp_path / "c", seed=4, **SMALL)
    assert a.name == b.name != c.name
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_generator_caches_by_arguments(tmp_path):
    first = synthetic.make_caer_s(tmp_path, seed=0, **SMALL)
    stamp = (first / "train").stat().st_mtime_ns
    again = synthetic.make_caer_s(tmp_path, seed=0, **SMALL)
    assert again == first and (first / "train").stat().st_mtime_ns == stamp
    other = synthetic.make_caer_s(tmp_path, seed=0, **{**SMALL, "bias": 0.5})
    assert other != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftover temp folders


def test_generator_output_loads_without_the_sidecar(tmp_path):
    root = synthetic.make_caer_s(tmp_path, seed=0, **SMALL)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / synthetic.TRUTH_FILE).unlink()
    for split, n in SMALL["sizes"].items():
        ds = CAERS(copy, split)
        assert len(ds) == n and ds.box_counts["given"] == n
        assert np.bincount(ds.labels.numpy(), minlength=7).tolist() == [n // 7] * 7
        ds[0]


def test_scene_is_confounded_in_train_and_independent_in_test_ood(tmp_path):
    root = synthetic.make_caer_s(tmp_path, seed=0, sizes={"train": 700, "val": 7, "test": 7, "test_ood": 700},
                                 image_size=32, supersample=1)
    truth = synthetic.load_truth(root)

    def favoured_share(split):
        samples = truth["splits"][split]["samples"]
        hits = [s["scene"] % 7 == CLASSES.index(rel.split("/")[1]) for rel, s in samples.items()]
        return float(np.mean(hits))

    assert favoured_share("train") > 0.85          # bias 0.9 + 0.1/7 expected
    assert abs(favoured_share("test_ood") - 1 / 7) < 0.05
    assert truth["knobs"]["bias"] == 0.9 and truth["seed"] == 0


def test_unknown_knob_and_bad_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match="unknown knob"):
        synthetic.make_caer_s(tmp_path, biass=0.3)
    with pytest.raises(ValueError, match="bias must lie"):
        synthetic.make_caer_s(tmp_path, bias=1.5)
    with pytest.raises(ValueError, match="unknown split"):
        synthetic.make_caer_s(tmp_path, sizes={"training": 10})
    assert not os.listdir(tmp_path)
