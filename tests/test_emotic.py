"""EMOTIC: the Tandon-style CSV loader on handwritten fixtures, and the synthetic generator."""

from __future__ import annotations

import ast
import csv
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from reprolib.data.emotic import CATEGORIES, HEADER, Emotic, read_emotic_csv
from reprolib.data.synthetic import (EMOTIC_CATEGORIES, EMOTIC_DEFAULTS, EMOTIC_EXPRESSIONS, SPLITS,
                                     TRUTH_FILE, emotic_favoured_scenes, load_truth, make_emotic)
from reprolib.data.views import DataFormatError

# ----------------------------------------------------------------------------------------------------
# Handwritten fixtures in the exact real format
# ----------------------------------------------------------------------------------------------------

W, H = 80, 60
GREY, RED, GREEN, BLUE, YELLOW = (128, 128, 128), (220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 40)
HEADER_LINE = "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age"


def _chunks(seq, n):
    return [list(seq[i::n]) for i in range(n)]


LABEL_SETS = _chunks(CATEGORIES, 4)  # every category appears in exactly one of the four rows

# Image A: two people (the first touching the bottom border); image B: a reversed-corner box;
# image C: a box reaching past the right and top borders.
PEOPLE = {
    "fake_000.jpg": [((5, 10, 30, 60), RED), ((45, 5, 75, 50), GREEN)],
    "fake_001.jpg": [((20, 8, 70, 55), BLUE)],
    "fake_002.jpg": [((60, 0, 80, 40), YELLOW)],
}
ROWS = [  # the exact cells as they appear in the file
    '0,mscoco/images,fake_000.jpg,"[80, 60]","[5, 10, 30, 60]","{}","[7, 4, 6]",Female,Adult',
    '1,mscoco/images,fake_000.jpg,"[80, 60]","[45, 5, 75, 50]","{}","[1, 10, 5]",Male,Teenager',
    '2,framesdb/images,fake_001.jpg,"[80, 60]","[70, 55, 20, 8]","{}","[3, 3, 3]",Male,Kid',
    '3,framesdb/images,fake_002.jpg,"[80, 60]","[60, -5, 95, 40]","{}","[5.5, 6, 2]",Female,Adult',
]
FOLDERS = {"fake_000.jpg": "mscoco/images", "fake_001.jpg": "framesdb/images", "fake_002.jpg": "framesdb/images"}


def csv_lines() -> list[str]:
    return [HEADER_LINE] + [row.format(str(labels)) for row, labels in zip(ROWS, LABEL_SETS)]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def emotic_root(tmp_path: Path) -> Path:
    root = tmp_path / "emotic_data"
    for name, people in PEOPLE.items():
        img = Image.new("RGB", (W, H), GREY)
        draw = ImageDraw.Draw(img)
        for box, colour in people:
            draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=colour)
        folder = root / "emotic" / FOLDERS[name]
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / name, format="JPEG", quality=95)
    for split in ("train", "val", "test"):
        write_csv(root / f"{split}.csv", csv_lines())
    return root


def load(root: Path, split: str = "train", **kw) -> Emotic:
    kw.setdefault("context_size", (H, W))
    kw.setdefault("image_size", (H, W))
    return Emotic(root, split, image_root=root / "emotic", **kw)


def region_mean(t: torch.Tensor, box, inset: int = 2) -> np.ndarray:
    """Mean RGB (0..255) of a CHW float [0, 1] tensor inside a box shrunk by ``inset`` pixels."""
    x1, y1, x2, y2 = box
    return (t[:, y1 + inset:y2 - inset, x1 + inset:x2 - inset] * 255).mean(dim=(1, 2)).numpy()


def test_categories_match_generator():
    assert CATEGORIES == EMOTIC_CATEGORIES and len(CATEGORIES) == 26
    assert list(CATEGORIES) == sorted(CATEGORIES)
    assert HEADER_LINE == ",".join(HEADER)


def test_labels_and_vad_parse(emotic_root):
    ds = load(emotic_root)
    assert len(ds) == 4 and ds.categories == CATEGORIES
    labels = ds.labels
    assert labels.shape == (4, 26) and labels.dtype == torch.float32
    assert (labels.sum(0) == 1).all()  # every class exactly once
    for i, names in enumerate(LABEL_SETS):
        assert [CATEGORIES[j] for j in labels[i].nonzero().flatten().tolist()] == sorted(names)
    expected = torch.tensor([[7, 4, 6], [1, 10, 5], [3, 3, 3], [5.5, 6, 2]]) / 10
    assert torch.allclose(ds.vad, expected)
    item = ds[3]
    assert torch.equal(item["labels"], labels[3]) and torch.allclose(item["vad"], expected[3])
    assert ds.records[1].meta["gender"] == "Male" and ds.records[1].meta["age"] == "Teenager"
    assert ds.records[0].meta["image_size"] == (80.0, 60.0)


def test_views_shapes(emotic_root):
    ds = load(emotic_root, subject_size=(40, 20), context_size=(30, 40), image_size=(24, 32))
    item = ds[0]
    assert item["subject"].shape == (3, 40, 20)
    assert item["context"].shape == (3, 30, 40)
    assert item["image"].shape == (3, 24, 32)
    assert item["has_box"] is True and item["index"] == 0
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    assert batch["labels"].shape == (4, 26) and batch["vad"].shape == (4, 3)


def test_subject_masked_others_visible(emotic_root):
    ds = load(emotic_root, subject_size=(50, 25))
    (box_a, red), (box_b, green) = PEOPLE["fake_000.jpg"]
    first, second = ds[0], ds[1]
    # Person 1: its box is black in the context, red in the image; person 2 stays green.
    assert region_mean(first["context"], box_a).max() < 15
    assert np.allclose(region_mean(first["image"], box_a), red, atol=15)
    assert np.allclose(region_mean(first["context"], box_b), green, atol=15)
    # Person 2 is the subject of the next row: the roles swap.
    assert region_mean(second["context"], box_b).max() < 15
    assert np.allclose(region_mean(second["context"], box_a), red, atol=15)
    # The background outside both boxes is untouched.
    assert np.allclose(region_mean(first["context"], (32, 52, 44, 60), inset=0), GREY, atol=10)
    # The subject crop is the body: almost all red.
    assert np.allclose(region_mean(first["subject"], (0, 0, 25, 50)), red, atol=20)


def test_several_people_per_image(emotic_root):
    ds = load(emotic_root)
    groups = ds.image_groups()
    sizes = sorted(len(v) for v in groups.values())
    assert sizes == [1, 1, 2]
    shared = [v for v in groups.values() if len(v) == 2][0]
    assert shared == [0, 1] and ds.records[0].path == ds.records[1].path
    assert ds.records[0].path == emotic_root / "emotic" / "mscoco" / "images" / "fake_000.jpg"


def test_reversed_and_out_of_range_boxes_are_normalised(emotic_root):
    ds = load(emotic_root)
    rev, clipped = ds[2], ds[3]
    assert ds.box_stats["reversed"] == 1 and ds.box_stats["clipped"] == 1
    # The reversed box (70, 55, 20, 8) is the blue body (20, 8, 70, 55): masked black.
    assert region_mean(rev["context"], (20, 8, 70, 55)).max() < 15
    assert np.allclose(region_mean(rev["image"], (20, 8, 70, 55)), BLUE, atol=15)
    # (60, -5, 95, 40) is clipped to (60, 0, 80, 40), the yellow body touching two borders.
    assert region_mean(clipped["context"], (60, 0, 80, 40)).max() < 15
    assert np.allclose(region_mean(clipped["context"], (0, 45, 55, 60), inset=0), GREY, atol=10)


def test_explicit_csv_path_and_default_image_root(emotic_root, tmp_path):
    other = write_csv(tmp_path / "elsewhere.csv", csv_lines()[:2])
    ds = Emotic(emotic_root / "emotic", csv=other)
    assert len(ds) == 1 and ds.csv_path == other
    assert ds[0]["context"].shape[0] == 3


def test_minimal_quoting_and_bom_are_read(emotic_root):
    lines = [HEADER_LINE, "0,mscoco/images,fake_000.jpg,\"[80, 60]\",\"[5, 10, 30, 60]\",['Peace'],\"[7, 4, 6]\",Male,Adult"]
    path = emotic_root / "train.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    ds = load(emotic_root)
    assert ds.labels[0].nonzero().flatten().tolist() == [CATEGORIES.index("Peace")]


# --- bad input: each case is one edit of the train CSV; the error names the file and the line ---------

def _replace(row: int, old: str, new: str):
    def edit(lines):
        assert old in lines[row]
        lines[row] = lines[row].replace(old, new)
        return lines
    return edit


BAD_CSV = {
    "wrong header": (lambda ls: [ls[0].replace("BBox", "Box")] + ls[1:], 1, "header"),
    "too few columns": (_replace(2, ",Male,Teenager", ",Male"), 3, "columns"),
    "too many columns": (_replace(3, ",Kid", ",Kid,extra"), 4, "columns"),
    "unparsable cell": (_replace(1, '"[7, 4, 6]"', '"[7, 4, 6"'), 2, "cannot parse"),
    "code in a cell": (_replace(1, '"[7, 4, 6]"', "\"__import__('os').getcwd()\""), 2, "cannot parse"),
    "unknown category": (_replace(2, "'Anger'", "'Joy'"), 3, "unknown category"),
    "empty categories": (lambda ls: ls[:1] + [re.sub(r'"\[\'[^"]*\]"', '"[]"', ls[1])] + ls[2:], 2, "empty"),
    "VAD above 10": (_replace(2, '"[1, 10, 5]"', '"[1, 11, 5]"'), 3, "1..10"),
    "VAD below 1": (_replace(4, '"[5.5, 6, 2]"', '"[5.5, 0, 2]"'), 5, "1..10"),
    "VAD not 3 numbers": (_replace(4, '"[5.5, 6, 2]"', '"[5.5, 6]"'), 5, "3 numbers"),
    "bbox 3 numbers": (_replace(1, '"[5, 10, 30, 60]"', '"[5, 10, 30]"'), 2, "4 numbers"),
    "bbox with text": (_replace(1, '"[5, 10, 30, 60]"', "\"[5, 10, 'a', 60]\""), 2, "4 numbers"),
    "bbox outside image": (_replace(1, '"[5, 10, 30, 60]"', '"[90, 10, 120, 60]"'), 2, "no area"),
    "image size not 2 numbers": (_replace(1, '"[80, 60]"', '"[80]"'), 2, "Image Size"),
    "index not a number": (_replace(3, "2,framesdb", "two,framesdb"), 4, "Index"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_bad_csv_raises_naming_file_and_line(emotic_root, case):
    edit, line, words = BAD_CSV[case]
    path = write_csv(emotic_root / "train.csv", edit(csv_lines()))
    with pytest.raises(DataFormatError) as err:
        load(emotic_root)
    message = str(err.value)
    assert f"{path}:{line}" in message, message
    assert words.lower() in message.lower(), message


def test_literal_cells_never_run_code(emotic_root, tmp_path):
    marker = tmp_path / "pwned"
    payload = f"\"[__import__('pathlib').Path('{marker}').touch()]\""
    write_csv(emotic_root / "train.csv", [csv_lines()[0], csv_lines()[1].replace('"[7, 4, 6]"', payload)])
    with pytest.raises(DataFormatError):
        load(emotic_root)
    assert not marker.exists()


def test_missing_csv_names_it(emotic_root):
    with pytest.raises(DataFormatError, match=re.escape(str(emotic_root / "nosuch.csv"))):
        load(emotic_root, "nosuch")
    empty = write_csv(emotic_root / "empty.csv", [HEADER_LINE])
    with pytest.raises(DataFormatError, match=re.escape(str(empty))):
        load(emotic_root, "empty")


def test_missing_image_fails_at_init_with_line(emotic_root):
    (emotic_root / "emotic" / "framesdb" / "images" / "fake_001.jpg").unlink()
    with pytest.raises(DataFormatError, match=re.escape(f"{emotic_root / 'train.csv'}:4") + ".*fake_001.jpg.*missing"):
        load(emotic_root)
    ds = load(emotic_root, check_files=False)  # deferred: the error comes with the item
    ds[0]
    with pytest.raises(DataFormatError, match="fake_001.jpg.*missing"):
        ds[2]


def test_corrupt_image_fails_when_loaded(emotic_root):
    bad = emotic_root / "emotic" / "framesdb" / "images" / "fake_002.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    ds = load(emotic_root)  # init does not decode images
    assert ds[0]["labels"].sum() > 0
    with pytest.raises(DataFormatError, match=re.escape(str(bad))):
        ds[3]


# ----------------------------------------------------------------------------------------------------
# The synthetic generator
# ----------------------------------------------------------------------------------------------------

SMALL = {"sizes": {"train": 150, "val": 30, "test": 40, "test_ood": 150}}


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return make_emotic(tmp_path_factory.mktemp("synth"), seed=3, **SMALL)


def test_expression_table_is_distinct():
    assert set(EMOTIC_EXPRESSIONS) == set(EMOTIC_CATEGORIES)
    assert len(set(EMOTIC_EXPRESSIONS.values())) == 26


def test_generator_is_deterministic(synth, tmp_path):
    again = make_emotic(tmp_path / "again", seed=3, **SMALL)
    assert again.name == synth.name
    first = file_hashes(synth)
    assert len(first) > 300 and first == file_hashes(again)
    other = make_emotic(tmp_path / "other", seed=4, **SMALL)
    second = file_hashes(other)
    assert second["train.csv"] != first["train.csv"]
    assert second["synth/images/000001.jpg"] != first["synth/images/000001.jpg"]


def test_generator_caches(synth):
    before = {p: p.stat().st_mtime_ns for p in synth.rglob("*")}
    assert make_emotic(synth.parent, seed=3, **SMALL) == synth
    assert {p: p.stat().st_mtime_ns for p in synth.rglob("*")} == before


def test_generated_csv_is_in_the_real_format(synth):
    lines = (synth / "train.csv").read_text().splitlines()
    assert lines[0] == HEADER_LINE
    pattern = re.compile(r'^\d+,synth/images,\d{6}\.jpg,"\[96, 64\]","\[\d+, \d+, \d+, \d+\]",'
                         r'"\[(\'[A-Za-z/]+\'(, )?)+\]","\[\d+, \d+, \d+\]",(Male|Female),(Adult|Teenager|Kid)$')
    for line in lines[1:]:
        assert pattern.match(line), line
    rows = list(csv.DictReader(lines))
    assert [int(r["Index"]) for r in rows] == list(range(len(rows)))
    with Image.open(synth / "synth/images" / rows[0]["Filename"]) as im:
        assert im.format == "JPEG" and im.size == (96, 64)
    for r in rows:
        x1, y1, x2, y2 = ast.literal_eval(r["BBox"])
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 64
        assert 0.55 * 64 <= y2 - y1 <= 0.95 * 64  # people are 60-90 % of the image height
        assert all(1 <= v <= 10 for v in ast.literal_eval(r["Continuous_Labels"]))
    assert any(ast.literal_eval(r["BBox"])[3] == 64 for r in rows)  # some boxes touch the border


def test_generated_splits_load(synth):
    for split in SPLITS:
        ds = Emotic(synth, split, subject_size=(32, 16), context_size=(32, 48))
        images = load_truth(synth)["splits"][split]["images"]
        assert len(ds) > images  # several people per image ...
        sizes = [len(v) for v in ds.image_groups().values()]
        assert len(sizes) == images and np.mean(np.array(sizes) > 1) > 0.4  # ... regularly
        assert (ds.labels.sum(0) > 0).all(), f"{split}: some category never occurs"
        assert (ds.labels.sum(1) >= 1).all() and ds.labels.sum(1).max() <= 3
        item = ds[len(ds) - 1]
        assert item["subject"].shape == (3, 32, 16) and item["context"].shape == (3, 32, 48)


def test_loader_does_not_need_the_sidecar(synth, tmp_path):
    assert (synth / TRUTH_FILE).is_file()
    copy = Path(shutil.copytree(synth, tmp_path / "copy"))
    (copy / TRUTH_FILE).unlink()
    ds = Emotic(copy, "val")
    assert torch.equal(ds.labels, Emotic(synth, "val").labels)
    ds[0]


def test_sidecar_rows_match_csv(synth):
    truth = load_truth(synth)
    assert truth["categories"] == list(EMOTIC_CATEGORIES) and truth["knobs"]["image_size"] == [96, 64]
    for split in SPLITS:
        rows = list(csv.DictReader((synth / f"{split}.csv").read_text().splitlines()))
        meta = truth["splits"][split]["rows"]
        assert len(meta) == len(rows)
        for r, m in zip(rows, meta):
            assert m["image"] == f"{r['Folder']}/{r['Filename']}"
            assert EMOTIC_CATEGORIES[m["primary"]] in ast.literal_eval(r["Categorical_Labels"])


def _scene_agreement(truth: dict, split: str) -> float:
    """Share of images whose scene favours the first person's primary category."""
    n_scenes = truth["knobs"]["n_scenes"]
    firsts = [m for m in truth["splits"][split]["rows"] if m["person"] == 0]
    return float(np.mean([m["scene"] in emotic_favoured_scenes(m["primary"], n_scenes) for m in firsts]))


def test_scene_confounded_in_train_independent_in_test_ood(synth):
    truth = load_truth(synth)
    assert truth["splits"]["test_ood"]["bias"] == 0.0 and truth["splits"]["train"]["bias"] == 0.8
    chance = 1 / truth["knobs"]["n_scenes"]
    assert _scene_agreement(truth, "train") > 0.65
    assert _scene_agreement(truth, "test_ood") < chance + 0.12
    # Independence in test_ood: the scene distribution hardly depends on the label group.
    rows = [m for m in truth["splits"]["test_ood"]["rows"] if m["person"] == 0]
    scenes = np.array([m["scene"] for m in rows])
    assert len(set(scenes.tolist())) == truth["knobs"]["n_scenes"]


def test_context_prior_and_expression_noise(synth):
    truth = load_truth(synth)
    for split in ("train", "test_ood"):  # the helpful prior holds in every split
        rows = truth["splits"][split]["rows"]
        first_of = {m["image"]: m["primary"] for m in rows if m["person"] == 0}
        others = [m["primary"] == first_of[m["image"]] for m in rows if m["person"] > 0]
        assert np.mean(others) > 0.3  # prior 0.4 plus chance agreement
    shown = [m["shown"] == m["primary"] for m in truth["splits"]["train"]["rows"]]
    assert 0.7 < np.mean(shown) < 0.92  # expression_noise 0.2 (a random pick may repeat the label)


def test_unknown_or_bad_knobs_raise(tmp_path):
    with pytest.raises(TypeError, match="unknown knob"):
        make_emotic(tmp_path, max_bystanders=2)
    with pytest.raises(ValueError, match="unknown split"):
        make_emotic(tmp_path, sizes={"training": 3})
    with pytest.raises(ValueError, match="bias"):
        make_emotic(tmp_path, bias=1.5)
    with pytest.raises(ValueError, match="max_people"):
        make_emotic(tmp_path, max_people=0)
    assert not any(tmp_path.iterdir())


def test_defaults_are_smoke_sized():
    assert EMOTIC_DEFAULTS["image_size"] == (96, 64) and EMOTIC_DEFAULTS["max_people"] >= 2
    assert set(EMOTIC_DEFAULTS["sizes"]) == set(SPLITS)


# --- EmotiCon's extra inputs: pose keypoints and depth maps ---------------------------------------


def test_generator_writes_pose_and_depth_that_the_loader_serves(synth):
    ds = Emotic(synth, "train", extra_views=("pose", "depth"), image_size=(32, 48))
    poses = np.load(synth / "pose" / "train.npy", allow_pickle=False)
    assert poses.shape == (len(ds), 10, 3) and np.all(poses[:, :, 2] == 1.0)
    item = ds[0]
    assert item["pose"].shape == (10, 3) and item["depth"].shape == (1, 32, 48)
    xy = ds.targets("pose")[:, :, :2]
    assert xy.min() > -0.6 and xy.max() < 1.6          # joints sit in and around their own body box
    assert 0.0 <= item["depth"].min() and item["depth"].max() <= 1.0
    assert item["depth"].max() > 0.5                   # people and near ground are bright


def test_pose_and_depth_problems_name_the_file(synth, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(synth, copy)
    np.save(copy / "pose" / "val.npy", np.zeros((3, 10, 3), dtype=np.float32))
    with pytest.raises(DataFormatError, match=r"pose/val.npy: expected shape"):
        Emotic(copy, "val", extra_views=("pose",))
    (copy / "pose" / "test.npy").unlink()
    with pytest.raises(DataFormatError, match=r"pose/test.npy: pose file is missing"):
        Emotic(copy, "test", extra_views=("pose",))
    shutil.rmtree(copy / "depth")
    ds = Emotic(copy, "train", extra_views=("depth",))
    with pytest.raises(DataFormatError, match="depth map is missing"):
        ds[0]
    with pytest.raises(ValueError, match="unknown extra view"):
        Emotic(copy, "train", extra_views=("gaze",))
