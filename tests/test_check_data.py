"""``check-data`` on tiny folders from the synthetic generator (the real formats), each damaged in one way.

Every defect must come back in the report naming its file, as an error or a warning as the loader
judges it, and a clean folder must pass; the notebook-usage table must agree with the notebooks.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reprolib import checkdata
from reprolib.data import synthetic
from reprolib.data.mult import mult_filename

REPO = Path(__file__).resolve().parents[1]
MULT_SIZES = {"train": 20, "valid": 8, "test": 8}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    """One tiny folder per format, laid out as the real datasets are (no val for CAER-S, no test_ood)."""
    out = tmp_path_factory.mktemp("generated")
    caer = synthetic.make_caer_s(out, seed=0, sizes={"train": 14, "val": 0, "test": 7, "test_ood": 0}, image_size=32)
    emotic = synthetic.make_emotic(out, seed=0, sizes={"train": 8, "val": 4, "test": 4, "test_ood": 0},
                                   image_size=(32, 32))
    (emotic / "test_ood.csv").unlink()
    (emotic / synthetic.EMOTIC_POSE_FOLDER / "test_ood.npy").unlink()
    return {"caer_s": caer, "emotic": emotic}


@pytest.fixture
def caer(generated, tmp_path) -> Path:
    return Path(shutil.copytree(generated["caer_s"], tmp_path / "CAER-S"))


@pytest.fixture
def emotic(generated, tmp_path) -> Path:
    return Path(shutil.copytree(generated["emotic"], tmp_path / "emotic"))


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="reprolib")
    checkdata.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["check-data", *argv, "--no-progress"])
    return args.func(args)


def problems(items: list[str], *words: str) -> list[str]:
    return [m for m in items if all(w in m for w in words)]


def edit_csv(path: Path, line: int, column: str, value: str) -> None:
    """Set one cell of an EMOTIC CSV (line numbers as the loader counts them, header = 1)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[line - 1][rows[0].index(column)] = value
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def csv_image(root: Path, split: str, line: int) -> Path:
    with open(root / f"{split}.csv", newline="") as fh:
        row = list(csv.reader(fh))[line - 1]
    return root / row[1] / row[2]


# ---------------------------------------------------------------------------------------------- CAER-S

def test_clean_caer_s_passes_and_reports_its_counts(caer, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert cli("caer_s", str(caer), "--json", str(out)) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"check-data caer_s: {caer}\nOK: 0 error(s)")
    assert "train      14  face_boxes/train.txt" in text and "Anger               2     1" in text
    assert "val: absent: the notebooks carve 2 image(s) from train" in text
    assert "test_ood: absent" in text and "n/a" in text and "04_baseline_caernet" in text
    saved = json.loads(out.read_text())
    assert saved["ok"] is True and saved["counts"]["per_class"]["test"]["Surprise"] == 1
    assert saved["counts"]["splits"]["train"]["images"] == 14


def test_corrupt_png_is_an_error_naming_the_file(caer):
    bad = caer / "train" / "Fear" / "0001.png"
    bad.write_bytes(bad.read_bytes()[:60])  # header intact, pixel data cut
    report = checkdata.check("caer_s", caer, progress=False)
    assert not report.ok and problems(report.errors, str(bad), "cannot decode")
    assert report.counts["splits"]["train"]["unreadable"] == 1
    assert report.counts["splits"]["test"]["unreadable"] == 0


def test_missing_class_folder_is_an_error_and_the_other_split_is_still_checked(caer):
    shutil.rmtree(caer / "test" / "Sad")
    report = checkdata.check("caer_s", caer, progress=False)
    assert problems(report.errors, str(caer / "test"), "'Sad'")
    assert report.counts["splits"]["test"]["status"].startswith("refused")
    assert report.counts["splits"]["train"]["images"] == 14 and cli("caer_s", str(caer)) == 1


def test_face_box_naming_a_missing_image_is_a_warning(caer):
    (caer / "train" / "Anger" / "0001.png").unlink()
    report = checkdata.check("caer_s", caer, progress=False)
    assert report.ok and problems(report.warnings, str(caer / "face_boxes" / "train.txt"), "Anger/0001.png")
    assert report.counts["splits"]["train"]["unmatched"] == 1


def test_image_without_a_face_box_is_a_warning_naming_it(caer):
    boxes = caer / "face_boxes" / "train.txt"
    boxes.write_text("".join(line for line in boxes.read_text().splitlines(keepends=True)
                             if not line.startswith("train/Happy/0002.png,")))
    report = checkdata.check("caer_s", caer, progress=False)
    assert report.ok and problems(report.warnings, str(boxes), "no face box for train/Happy/0002.png")
    assert report.counts["splits"]["train"]["no box"] == 1


def test_non_numeric_box_coordinate_is_an_error_and_the_images_are_still_decoded(caer):
    boxes = caer / "face_boxes" / "train.txt"
    lines = boxes.read_text().splitlines()
    fields = lines[2].split(",")
    lines[2] = ",".join(fields[:2] + ["abc"] + fields[3:])
    boxes.write_text("\n".join(lines) + "\n")
    bad = caer / "train" / "Sad" / "0001.png"
    bad.write_bytes(b"not a png")
    report = checkdata.check("caer_s", caer, progress=False)
    assert problems(report.errors, f"{boxes}:3:", "must be numbers", "abc")
    assert problems(report.errors, str(bad), "cannot decode")  # found on the second pass, without boxes
    assert report.counts["splits"]["train"]["box file"] == "refused"


# ---------------------------------------------------------------------------------------------- EMOTIC

def test_clean_emotic_passes_with_pose_and_depth_complete(emotic, capsys):
    assert cli("emotic", str(emotic)) == 0
    text = capsys.readouterr().out
    report = checkdata.check("emotic", emotic, progress=False)
    train = report.counts["splits"]["train"]
    assert train["persons"] == sum(train["labels/person"].values()) and train["images"] == 8
    assert train["depth"] == f"{train['persons']}/{train['persons']}" and train["pose"].endswith("x10 joints")
    per_person = train["labels/person"]  # the generator gives a person 1 to 3 labels
    labelled = per_person["1"] + 2 * per_person["2"] + 3 * per_person["3+"]
    assert sum(report.counts["per_class"]["train"].values()) == labelled
    assert len(report.counts["per_class"]["val"]) == 26
    assert re.search(rf"^  train +{train['persons']} +8 ", text, re.M) and "07_baseline_emoticon" in text
    assert "test_ood: absent" in text


def test_unknown_category_is_an_error_naming_every_bad_row(emotic):
    csv_path = emotic / "train.csv"
    edit_csv(csv_path, 3, "Categorical_Labels", "['Joy']")
    edit_csv(csv_path, 6, "Categorical_Labels", "['Peace', 'Boredom']")
    report = checkdata.check("emotic", emotic, progress=False)
    assert problems(report.errors, f"{csv_path}:3:", "unknown category 'Joy'")
    assert problems(report.errors, f"{csv_path}:6:", "unknown category 'Boredom'")
    assert report.counts["splits"]["train"]["status"].startswith("refused")
    assert report.counts["splits"]["val"]["persons"] > 0


def test_missing_image_is_an_error_naming_the_row_and_the_file(emotic):
    image = csv_image(emotic, "val", 2)
    image.unlink()
    report = checkdata.check("emotic", emotic, progress=False)
    assert problems(report.errors, f"{emotic / 'val.csv'}:2:", str(image), "is missing")
    assert report.counts["splits"]["val"]["unreadable"] == 1 and report.counts["splits"]["train"]["unreadable"] == 0


def test_box_outside_the_image_is_an_error(emotic):
    edit_csv(emotic / "test.csv", 4, "BBox", "[40, 40, 50, 50]")
    report = checkdata.check("emotic", emotic, progress=False)
    assert problems(report.errors, f"{emotic / 'test.csv'}:4:", "no area inside the 32")


def test_box_past_the_border_is_a_clipped_warning(emotic):
    edit_csv(emotic / "train.csv", 2, "BBox", "[-6, 0, 20, 40]")
    report = checkdata.check("emotic", emotic, progress=False)
    assert report.ok and problems(report.warnings, "clipped", f"{emotic / 'train.csv'}:2")
    assert report.counts["splits"]["train"]["clipped"] == 1


def test_truncated_image_is_an_error_naming_the_file(emotic):
    image = csv_image(emotic, "train", 4)
    image.write_bytes(image.read_bytes()[:200])
    report = checkdata.check("emotic", emotic, progress=False)
    assert problems(report.errors, str(image), "cannot decode")
    assert report.counts["splits"]["train"]["unreadable"] == 1


def test_bad_pose_file_is_an_error_naming_it(emotic):
    pose = emotic / synthetic.EMOTIC_POSE_FOLDER / "val.npy"
    np.save(pose, np.load(pose)[:-1])  # one row short of the CSV
    report = checkdata.check("emotic", emotic, progress=False)
    assert problems(report.errors, str(pose), "expected shape")
    assert report.counts["splits"]["val"]["pose"] == "refused"


def test_missing_depth_map_is_an_error_and_absent_pose_a_warning(emotic):
    shutil.rmtree(emotic / synthetic.EMOTIC_POSE_FOLDER)
    image = csv_image(emotic, "test", 2)
    depth = emotic / synthetic.EMOTIC_DEPTH_FOLDER / image.relative_to(emotic).with_suffix(".png")
    depth.unlink()
    report = checkdata.check("emotic", emotic, progress=False)
    assert problems(report.errors, str(depth), "depth map is missing")
    assert problems(report.warnings, str(emotic / "pose"), "absent", "notebook 07")
    assert report.counts["splits"]["test"]["depth"] != report.counts["splits"]["train"]["depth"]
    assert "pose" not in report.counts["splits"]["test"]


# ---------------------------------------------------------------------------------------------- MulT

@pytest.mark.parametrize("dataset", ["iemocap", "mosei"])
def test_clean_mult_file_passes_with_label_counts(dataset, tmp_path, capsys):
    synthetic.make_mult(tmp_path / mult_filename(dataset), dataset, sizes=MULT_SIZES, dims={"text": 8})
    assert cli(dataset, str(tmp_path)) == 0
    text = capsys.readouterr().out
    report = checkdata.check(dataset, tmp_path, progress=False)
    assert report.counts["splits"]["val"]["N"] == 8 and report.counts["splits"]["train"]["widths"]["text"] == 8
    per_class = report.counts["per_class"]["test"]
    assert (sum(per_class.values()) == 8) and len(per_class) == (4 if dataset == "iemocap" else 7)
    assert "10_causalmer_missing_modality" in text and re.search(r"^  train +20 ", text, re.M)


def test_nan_labels_are_an_error_naming_the_file(tmp_path):
    data, _ = synthetic.generate_mult("iemocap", 0, sizes=MULT_SIZES, dims={"text": 8})
    data["valid"]["labels"][3, 1, :] = np.nan
    path = tmp_path / "iemocap_data.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    report = checkdata.check("iemocap", tmp_path, progress=False)
    assert problems(report.errors, str(path), "['valid']['labels']", "2 non-finite label")
    assert cli("iemocap", str(path)) == 1


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    from hostile.cases_pickle import glob, tup, unicode, valid_iemocap_with

    marker = tmp_path / "ran"
    blob = valid_iemocap_with(glob("os", "system") + tup(unicode(f"touch {marker}")) + b"R")
    pickle.loads(blob)  # control: a plain unpickler runs the command
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "iemocap_data.pkl"
    path.write_bytes(blob)
    report = checkdata.check("iemocap", tmp_path, progress=False)
    assert problems(report.errors, str(path), "os.system", "refused without running")
    assert not marker.exists() and cli("iemocap", str(tmp_path)) == 1


# ---------------------------------------------------------------------------------------------- the rest

def test_missing_folder_exits_2(tmp_path, capsys):
    assert cli("emotic", str(tmp_path / "nowhere")) == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err
    assert not checkdata.check("mosei", tmp_path / "nowhere").ok


def test_usage_follows_the_presets_the_notebooks_resolve(emotic):
    for nb in sorted((REPO / "notebooks").glob("[01][0-9]_*.ipynb")):
        if nb.stem != "11_summary":  # every notebook that reads data takes its presets by its name
            source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
            assert f'NOTEBOOK = "{nb.stem}"' in source and "config.data_roots(data_root, NOTEBOOK, cfg)" in source
    caer = checkdata.notebook_use("caer_s")
    assert caer["03_baseline_emotnet"] == {"full": ("emotnet", ())}
    assert caer["08_ccim"] == {"smoke": ("caernet", ()), "full": ("caernet, cdnet", ())}
    assert "01_context_bias" in caer and "10_causalmer_missing_modality" not in caer
    views = ("pose", "depth")
    assert checkdata.notebook_use("emotic")["07_baseline_emoticon"]["smoke"] == ("emoticon", views)
    assert checkdata.notebook_use("emotic")["09_clef"]["full"] == ("emotnet, gnncnn, emoticon", views)
    assert list(checkdata.notebook_use("mosei")) == ["10_causalmer_missing_modality"]
    text = checkdata.check("emotic", emotic, progress=False).format()
    assert re.search(r"^  06_baseline_cdnet +- +cdnet$", text, re.M)
    assert "emoticon (+ pose, depth)" in text and "03, 05, 07 at smoke size" in text


def test_importing_the_checker_does_not_import_torch():
    code = "import sys, reprolib.checkdata; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
