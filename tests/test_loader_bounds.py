"""The loaders' bounds that end in a decision other than an error (a warning, a skip, a correct
conversion), and the promise that valid files decode exactly as before. The bad inputs that must end
in an error are the hostile cases of ``tests/hostile/cases_loaders.py``."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reprolib.causal.dictionary import ConfounderDictionary
from reprolib.data.caers import CAERS, CLASSES, read_face_boxes
from reprolib.data.emotic import Emotic
from reprolib.data.views import DataFormatError, open_image, open_rgb

HEADER = "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age"


def _caer(tmp: Path) -> Path:
    """One 8x6 frame per class and a text box file, line i = class i."""
    root = tmp / "CAER-S"
    lines = []
    for label, cls in enumerate(CLASSES):
        (root / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 6), (200, 100, 50)).save(root / "train" / cls / "0001.png")
        lines.append(f"train/{cls}/0001.png,{label},2,1,6,5")
    (root / "face_boxes").mkdir()
    (root / "face_boxes" / "train.txt").write_text("\n".join(lines) + "\n")
    return root


# --- images: valid files decode as PIL's convert() does; 16-bit ones are scaled, not clipped ---------

@pytest.mark.parametrize("mode, fmt", [("RGB", "PNG"), ("RGB", "JPEG"), ("L", "PNG"), ("RGBA", "PNG"),
                                       ("P", "PNG"), ("LA", "PNG"), ("1", "PNG"), ("CMYK", "JPEG")])
def test_eight_bit_images_decode_exactly_as_convert_does(tmp_path, mode, fmt):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / f"x.{fmt.lower()}"
    img.save(path, format=fmt)
    with Image.open(path) as im:
        for target in ("RGB", "L"):
            expected = np.asarray(im.convert(target))
            assert np.array_equal(np.asarray(open_image(path, target)), expected)


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 255, 256, 4000], [32768, 65280, 65535, 1]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as im:
        assert im.mode.startswith("I;16")  # what the fix is about: convert("RGB") would clip at 255
    rgb = np.asarray(open_rgb(tmp_path / "grey16.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    assert np.array_equal(rgb[..., 0], values >> 8) and (rgb == rgb[..., :1]).all()


def test_sixteen_bit_depth_map_is_scaled(tmp_path):
    root = tmp_path / "emotic"
    (root / "imgs").mkdir(parents=True)
    Image.new("RGB", (16, 12), (90, 120, 150)).save(root / "imgs" / "a.jpg", format="JPEG")
    (root / "depth" / "imgs").mkdir(parents=True)
    Image.fromarray(np.full((12, 16), 40_000, dtype=np.uint16)).save(root / "depth" / "imgs" / "a.png")
    (root / "train.csv").write_text(
        f'{HEADER}\n0,imgs,a.jpg,"[16, 12]","[2, 2, 10, 11]","[\'Peace\']","[5, 5, 5]",Female,Adult\n')
    depth = Emotic(root, "train", extra_views=("depth",), image_size=(12, 16))[0]["depth"]
    assert np.allclose(depth.numpy(), (40_000 >> 8) / 255.0)


def test_32_bit_image_within_eight_bits_decodes_as_before(tmp_path):
    Image.fromarray(np.array([[0, 7, 255]], dtype=np.int32), mode="I").save(tmp_path / "small.tif")
    assert np.asarray(open_rgb(tmp_path / "small.tif"))[0, :, 0].tolist() == [0, 7, 255]


def test_pixel_bound_holds_when_pil_limit_is_lifted(tmp_path, monkeypatch):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 10_000, 9_000, 8, 2, 0, 0, 0)
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                       + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # another library switched PIL's check off
    with pytest.raises(DataFormatError, match=r"big.png: image file declares 10000x9000 = 90000000 pixels"):
        open_rgb(tmp_path / "big.png")


# --- CAER-S: what is skipped or only warned about -----------------------------------------------------

def test_appledouble_files_are_skipped_with_one_warning(tmp_path):
    root = _caer(tmp_path)
    (root / "train" / "Anger" / "._0001.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (root / "train" / "Sad" / "._0001.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    with pytest.warns(UserWarning, match=r"skipped 2 macOS AppleDouble") as caught:
        ds = CAERS(root, "train")
    assert len([w for w in caught if "AppleDouble" in str(w.message)]) == 1
    assert len(ds) == 7 and not any(r.path.name.startswith("._") for r in ds.records)


def test_identical_repeated_box_lines_warn_once_with_the_count(tmp_path):
    root = _caer(tmp_path)
    path = root / "face_boxes" / "train.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + lines[:2]) + "\n")
    with pytest.warns(UserWarning, match=r"train.txt: 2 face box\(es\) repeat an earlier one exactly "
                                         r"\(e.g. line 8 repeats line 1\)"):
        boxes = read_face_boxes(path)
    assert len(boxes) == 7 and boxes[("Anger", "0001.png")] == [2.0, 1.0, 6.0, 5.0]


def test_boxes_for_missing_images_warn_with_count_and_example(tmp_path):
    root = _caer(tmp_path)
    with (root / "face_boxes" / "train.txt").open("a") as fh:
        fh.write("train/Sad/0042.png,5,1,1,3,3\ntrain/Sad/0043.png,5,1,1,3,3\n")
    with pytest.warns(UserWarning, match=r"train.txt: 2 of 9 face boxes name images that are not in .*"
                                         r"\(e.g. Sad/0042.png\)"):
        ds = CAERS(root, "train")
    assert len(ds) == 7 and ds.box_counts["unmatched_in_file"] == 2


def test_json_box_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "train.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"Anger/0001.png": [1, 2, 3, 4]}).encode())
    assert read_face_boxes(path) == {("Anger", "0001.png"): [1.0, 2.0, 3.0, 4.0]}


# --- EMOTIC: symbolic links inside the image root are the data owner's layout -------------------------

def test_symlinked_image_folder_is_followed(tmp_path):
    elsewhere = tmp_path / "coco" / "images"
    elsewhere.mkdir(parents=True)
    Image.new("RGB", (16, 12), (90, 120, 150)).save(elsewhere / "a.jpg", format="JPEG")
    root = tmp_path / "emotic"
    (root / "mscoco").mkdir(parents=True)
    (root / "mscoco" / "images").symlink_to(elsewhere, target_is_directory=True)
    (root / "train.csv").write_text(
        f'{HEADER}\n0,mscoco/images,a.jpg,"[16, 12]","[2, 2, 10, 11]","[\'Peace\']","[5, 5, 5]",Female,Adult\n')
    ds = Emotic(root, "train")
    assert ds.records[0].path == root / "mscoco" / "images" / "a.jpg" and ds[0]["image"].shape[0] == 3


# --- the dictionary: the bounds leave real dictionaries alone ----------------------------------------

def test_compressed_dictionary_within_the_bounds_loads(tmp_path):
    rng = np.random.default_rng(0)
    Z, P = rng.normal(size=(64, 32)).astype(np.float32), np.full(64, 1 / 64, dtype=np.float32)
    np.savez_compressed(tmp_path / "d.npz", Z=Z, P=P, provenance=np.array(json.dumps({"format": 1, "n": 64})))
    loaded = ConfounderDictionary.load(tmp_path / "d.npz")
    assert np.array_equal(loaded.Z, Z) and np.array_equal(loaded.P, P) and loaded.provenance == {"n": 64}


def test_dictionary_refusals_are_data_format_errors(tmp_path):
    np.savez(tmp_path / "partial.npz", Z=np.ones((2, 3)))
    with pytest.raises(DataFormatError, match=r"partial.npz: .*missing array\(s\) \['P', 'provenance'\]"):
        ConfounderDictionary.load(tmp_path / "partial.npz")
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 3)))
    (tmp_path / "plain.npz").write_bytes(buf.getvalue())  # a .npy under the .npz name
    with pytest.raises(DataFormatError, match="plain.npz: not a confounder dictionary"):
        ConfounderDictionary.load(tmp_path / "plain.npz")
