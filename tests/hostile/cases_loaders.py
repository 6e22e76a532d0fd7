"""Bad files met by the dataset loaders (CAER-S, EMOTIC, their images) and by the confounder dictionary:
each must end in a ``DataFormatError`` that names the file, the row or key, and what was expected.

Every case writes a tiny valid dataset (seven 8x6 frames, or one EMOTIC image with one person) and then
spoils one element, so that the bad element is the only reason for the error. Cases where the unfixed code
allocates gigabytes (decompression bombs, huge declared array shapes) run isolated.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from .harness import Attempt, case

CLASSES = ("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")  # CAER-S folder names
EMOTIC_HEADER = "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age"


# --- fixtures -------------------------------------------------------------------------------------

def _caer(tmp: Path) -> Path:
    """A valid CAER-S train split: one 8x6 frame per class and a text box file, line i = class i."""
    root = tmp / "CAER-S"
    lines = []
    for label, cls in enumerate(CLASSES):
        path = root / "train" / cls / "0001.png"
        path.parent.mkdir(parents=True)
        Image.new("RGB", (8, 6), (200, 100, 50)).save(path)
        lines.append(f"train/{cls}/0001.png,{label},2,1,6,5")
    (root / "face_boxes").mkdir()
    (root / "face_boxes" / "train.txt").write_text("\n".join(lines) + "\n")
    return root


def _caer_json(tmp: Path, text: str) -> Path:
    """The CAER-S fixture with its box file replaced by ``train.json`` holding ``text``."""
    root = _caer(tmp)
    (root / "face_boxes" / "train.txt").unlink()
    (root / "face_boxes" / "train.json").write_text(text)
    return root


def _open_caers(root: Path):
    from reprolib.data.caers import CAERS

    return lambda: CAERS(root, "train")


def _emotic_row(folder: str = "imgs", filename: str = "a.jpg", box: str = "[2, 2, 10, 11]") -> str:
    return f'0,{folder},{filename},"[16, 12]","{box}","[\'Peace\']","[5, 5, 5]",Female,Adult'


def _emotic(tmp: Path, row: str | None = None) -> Path:
    """A valid EMOTIC train split: one 16x12 image with one person, its depth map and its pose."""
    root = tmp / "emotic"
    (root / "imgs").mkdir(parents=True)
    Image.new("RGB", (16, 12), (90, 120, 150)).save(root / "imgs" / "a.jpg", format="JPEG")
    (root / "depth" / "imgs").mkdir(parents=True)
    Image.new("L", (16, 12), 128).save(root / "depth" / "imgs" / "a.png")
    (root / "pose").mkdir()
    np.save(root / "pose" / "train.npy", np.ones((1, 4, 3), dtype=np.float32))
    (root / "train.csv").write_text(f"{EMOTIC_HEADER}\n{row or _emotic_row()}\n")
    return root


def _open_emotic(root: Path, *views: str, item: bool = False):
    from reprolib.data.emotic import Emotic

    def call():
        ds = Emotic(root, "train", extra_views=views)
        if item:
            ds[0]
    return call


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels and whose pixel data is one empty
    zlib stream: a decompression bomb as the image header sees it, a few dozen bytes on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


def _dictionary(path: Path, **override) -> Path:
    """A valid 2-prototype dictionary as ``ConfounderDictionary.save`` writes it, members overridable."""
    arrays = {"Z": np.ones((2, 3), dtype=np.float32), "P": np.array([0.5, 0.5], dtype=np.float32),
              "provenance": np.array(json.dumps({"format": 1, "n": 2}))}
    np.savez(path, **{**arrays, **override})
    return path


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> None:
    """Write a zip by hand from (name, method, data as stored, crc, uncompressed size) entries, so an
    entry can hold a deflate stream built without inflating it here."""
    body, central = b"", b""
    for name, method, data, crc, size in members:
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0x21, crc, len(data), size, len(name), 0)
        central += (struct.pack("<I", 0x02014B50) + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHII", 0, 0, 0, 0, len(body)) + name.encode())
        body += struct.pack("<I", 0x04034B50) + fields + name.encode() + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0)
    path.write_bytes(body + central + end)


def _stored(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    return name, 0, data, zlib.crc32(data), len(data)


def _valid_members() -> list[tuple[str, int, bytes, int, int]]:
    """P and provenance of the valid dictionary, as stored zip entries."""
    out = []
    for name, value in (("P", np.array([0.5, 0.5], dtype=np.float32)),
                        ("provenance", np.array(json.dumps({"format": 1, "n": 2})))):
        buf = io.BytesIO()
        np.save(buf, value)
        out.append(_stored(f"{name}.npy", buf.getvalue()))
    return out


_LOAD_DICTIONARY = "from reprolib.causal.dictionary import ConfounderDictionary"


def _load_dictionary(path: Path):
    from reprolib.causal.dictionary import ConfounderDictionary

    return lambda: ConfounderDictionary.load(path)


# --- images ---------------------------------------------------------------------------------------

@case("images", "PNG declaring 200 million pixels (past twice PIL's bomb limit)", isolate=True)
def _bomb_error(tmp: Path) -> Attempt:
    _png_header_only(tmp / "bomb.png", 20_000, 10_000)
    return Attempt("open_rgb(ARGS['path'])", names=("bomb.png", "pixels"), args={"path": str(tmp / "bomb.png")},
                   prelude="from reprolib.data.views import open_rgb")


@case("images", "PNG declaring 100 million pixels (PIL only warns)", isolate=True)
def _bomb_warning(tmp: Path) -> Attempt:
    _png_header_only(tmp / "bomb.png", 10_000, 10_000)
    return Attempt("open_rgb(ARGS['path'])", names=("bomb.png", "pixels"), args={"path": str(tmp / "bomb.png")},
                   prelude="from reprolib.data.views import open_rgb")


@case("images", "32-bit integer TIFF with values above 255 (clipped by convert)")
def _int32_tiff(tmp: Path) -> Attempt:
    from reprolib.data.views import open_rgb

    Image.fromarray(np.full((6, 8), 70_000, dtype=np.int32), mode="I").save(tmp / "deep.tif")
    return Attempt(lambda: open_rgb(tmp / "deep.tif"), names=("deep.tif", "32-bit"))


@case("images", "floating-point TIFF (range unknown, convert rounds it)")
def _float_tiff(tmp: Path) -> Attempt:
    from reprolib.data.views import open_rgb

    Image.fromarray(np.full((6, 8), 0.5, dtype=np.float32), mode="F").save(tmp / "float.tif")
    return Attempt(lambda: open_rgb(tmp / "float.tif"), names=("float.tif", "floating-point"))


# --- CAER-S ---------------------------------------------------------------------------------------

@case("caer_s", "face-box file is not UTF-8")
def _box_not_utf8(tmp: Path) -> Attempt:
    root = _caer(tmp)
    path = root / "face_boxes" / "train.txt"
    path.write_bytes(path.read_bytes() + b"train/Sad/0001.png,5,1,1,3,3 \xff\xfe\n")
    return Attempt(_open_caers(root), names=("train.txt:8", "UTF-8"))


@case("caer_s", "face-box JSON nested 100000 deep")
def _box_json_deep(tmp: Path) -> Attempt:
    root = _caer_json(tmp, "[" * 100_000 + "]" * 100_000)
    return Attempt(_open_caers(root), names=("train.json", "nested"))


@case("caer_s", "face-box JSON box of booleans")
def _box_json_bools(tmp: Path) -> Attempt:
    root = _caer_json(tmp, json.dumps({"Anger/0001.png": [True, False, True, True]}))
    return Attempt(_open_caers(root), names=("train.json", "Anger/0001.png", "4 numbers"))


@case("caer_s", "face-box JSON coordinate of 400 digits (float overflow)")
def _box_json_overflow(tmp: Path) -> Attempt:
    root = _caer_json(tmp, '{"Anger/0001.png": [1, 1, 5, 1' + "0" * 400 + "]}")
    return Attempt(_open_caers(root), names=("train.json", "Anger/0001.png", "finite"))


@case("caer_s", "face-box JSON names one image twice with different boxes")
def _box_json_conflict(tmp: Path) -> Attempt:
    root = _caer_json(tmp, '{"Anger/0001.png": [2, 1, 6, 5], "train/Anger/0001.png": [1, 1, 3, 3]}')
    return Attempt(_open_caers(root), names=("train.json", "train/Anger/0001.png", "different boxes"))


@case("caer_s", "face-box lines 1 and 8 give one image different boxes")
def _box_text_conflict(tmp: Path) -> Attempt:
    root = _caer(tmp)
    with (root / "face_boxes" / "train.txt").open("a") as fh:
        fh.write("train/Anger/0001.png,0,1,1,3,3\n")
    return Attempt(_open_caers(root), names=("train.txt", "lines 1 and 8", "different boxes"))


@case("caer_s", "face-box coordinate is NaN")
def _box_text_nan(tmp: Path) -> Attempt:
    root = _caer(tmp)
    path = root / "face_boxes" / "train.txt"
    path.write_text(path.read_text().replace("train/Anger/0001.png,0,2,1", "train/Anger/0001.png,0,nan,1"))
    return Attempt(_open_caers(root), names=("train.txt:1", "finite"))


@case("caer_s", "face-box file is a folder")
def _box_file_is_folder(tmp: Path) -> Attempt:
    root = _caer(tmp)
    (root / "face_boxes" / "train.txt").unlink()
    (root / "face_boxes" / "train.txt").mkdir()
    return Attempt(_open_caers(root), names=("train.txt", "cannot read"))


@case("caer_s", "face-box file of another split: no box names an image of this one")
def _box_file_other_split(tmp: Path) -> Attempt:
    root = _caer(tmp)
    path = root / "face_boxes" / "train.txt"
    path.write_text(path.read_text().replace("0001.png", "0999.png"))
    return Attempt(_open_caers(root), names=("train.txt", "none of its"))


@case("caer_s", "class folder is empty")
def _empty_class(tmp: Path) -> Attempt:
    root = _caer(tmp)
    (root / "train" / "Fear" / "0001.png").unlink()
    (root / "face_boxes" / "train.txt").write_text("")
    return Attempt(_open_caers(root), names=(str(root / "train" / "Fear"), "no images"))


@case("caer_s", "split lacks a class folder")
def _missing_class(tmp: Path) -> Attempt:
    root = _caer(tmp)
    (root / "train" / "Surprise" / "0001.png").unlink()
    (root / "train" / "Surprise").rmdir()
    path = root / "face_boxes" / "train.txt"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if "Surprise" not in line))
    return Attempt(_open_caers(root), names=(str(root / "train"), "Surprise"))


@case("caer_s", "split holds both Angry and Anger folders")
def _angry_and_anger(tmp: Path) -> Attempt:
    root = _caer(tmp)
    (root / "train" / "Angry").mkdir()
    Image.new("RGB", (8, 6)).save(root / "train" / "Angry" / "0002.png")
    return Attempt(_open_caers(root), names=("Angry", "Anger", "twice"))


# --- EMOTIC ---------------------------------------------------------------------------------------

@case("emotic", "Filename climbs out of the image root with ../")
def _escape_dotdot(tmp: Path) -> Attempt:
    root = _emotic(tmp, _emotic_row(filename="../../outside.jpg"))
    Image.new("RGB", (16, 12)).save(tmp / "outside.jpg", format="JPEG")
    return Attempt(_open_emotic(root), names=("train.csv:2", "../../outside.jpg", "'..'"))


@case("emotic", "Folder is ../..")
def _escape_folder(tmp: Path) -> Attempt:
    root = _emotic(tmp, _emotic_row(folder="../..", filename="outside.jpg"))
    Image.new("RGB", (16, 12)).save(tmp.parent / "outside.jpg", format="JPEG")
    return Attempt(_open_emotic(root), names=("train.csv:2", "../..", "'..'"))


@case("emotic", "Filename is an absolute path")
def _escape_absolute(tmp: Path) -> Attempt:
    Image.new("RGB", (16, 12)).save(tmp / "outside.jpg", format="JPEG")
    root = _emotic(tmp, _emotic_row(filename=str(tmp / "outside.jpg")))
    return Attempt(_open_emotic(root), names=("train.csv:2", "outside.jpg", "absolute"))


@case("emotic", "absolute Filename with the depth view")
def _absolute_depth(tmp: Path) -> Attempt:
    Image.new("RGB", (16, 12)).save(tmp / "outside.jpg", format="JPEG")
    root = _emotic(tmp, _emotic_row(filename=str(tmp / "outside.jpg")))
    return Attempt(_open_emotic(root, "depth", item=True), names=("train.csv:2", "outside.jpg", "absolute"))


@case("emotic", "Filename holds a NUL byte")
def _nul_filename(tmp: Path) -> Attempt:
    root = _emotic(tmp, _emotic_row(filename="a.jpg\x00.png"))
    return Attempt(_open_emotic(root), names=("train.csv:2", "NUL"))


@case("emotic", "BBox coordinate of 400 digits (float overflow)")
def _bbox_overflow(tmp: Path) -> Attempt:
    root = _emotic(tmp, _emotic_row(box="[2, 2, 10, 1" + "0" * 400 + "]"))
    return Attempt(_open_emotic(root), names=("train.csv:2", "BBox"))


@case("emotic", "pose file is an .npz archive")
def _pose_npz(tmp: Path) -> Attempt:
    root = _emotic(tmp)
    with open(root / "pose" / "train.npy", "wb") as fh:
        np.savez(fh, pose=np.ones((1, 4, 3), dtype=np.float32))
    return Attempt(_open_emotic(root, "pose"), names=("train.npy", "npz"))


@case("emotic", "pose file holds NaN and inf")
def _pose_nonfinite(tmp: Path) -> Attempt:
    root = _emotic(tmp)
    pose = np.ones((1, 4, 3), dtype=np.float32)
    pose[0, 1, 0], pose[0, 2, 1] = np.nan, np.inf
    np.save(root / "pose" / "train.npy", pose)
    return Attempt(_open_emotic(root, "pose"), names=("train.npy", "2 non-finite"))


@case("emotic", "pose file cut short")
def _pose_truncated(tmp: Path) -> Attempt:
    root = _emotic(tmp)
    path = root / "pose" / "train.npy"
    path.write_bytes(path.read_bytes()[:-10])
    return Attempt(_open_emotic(root, "pose"), names=("train.npy", "truncated"))


@case("emotic", "pose header declares 12 TiB of keypoints", isolate=True)
def _pose_huge(tmp: Path) -> Attempt:
    root = _emotic(tmp)
    (root / "pose" / "train.npy").write_bytes(_npy_header((1, 1 << 40, 3)) + bytes(48))
    return Attempt("Emotic(ARGS['root'], 'train', extra_views=('pose',))", names=("train.npy", "truncated"),
                   args={"root": str(root)}, prelude="from reprolib.data.emotic import Emotic")


@case("emotic", "pose file of strings")
def _pose_strings(tmp: Path) -> Attempt:
    root = _emotic(tmp)
    np.save(root / "pose" / "train.npy", np.full((1, 4, 3), "x"))
    return Attempt(_open_emotic(root, "pose"), names=("train.npy", "numbers"))


@case("emotic", "depth map declares 200 million pixels")
def _depth_bomb(tmp: Path) -> Attempt:
    root = _emotic(tmp)
    _png_header_only(root / "depth" / "imgs" / "a.png", 20_000, 10_000)
    return Attempt(_open_emotic(root, "depth", item=True), names=("a.png", "pixels"))


@case("emotic", "32-bit integer depth map above 255 (a TIFF under the .png name)")
def _depth_int32(tmp: Path) -> Attempt:
    root = _emotic(tmp)
    path = root / "depth" / "imgs" / "a.png"
    Image.fromarray(np.full((12, 16), 70_000, dtype=np.int32), mode="I").save(path.with_suffix(".tif"))
    path.unlink()
    path.with_suffix(".tif").rename(path)  # a TIFF under the .png name: the loader opens by content
    return Attempt(_open_emotic(root, "depth", item=True), names=("a.png", "32-bit"))


# --- the confounder dictionary --------------------------------------------------------------------

@case("dictionary", "Z declares 4 TB in a 1 kB file", isolate=True)
def _dict_huge_shape(tmp: Path) -> Attempt:
    path = tmp / "dict.npz"
    _zip(path, [_stored("Z.npy", _npy_header((1 << 40, 1))), *_valid_members()])
    return Attempt("ConfounderDictionary.load(ARGS['path'])", names=("dict.npz", "Z.npy", "declares"),
                   args={"path": str(path)}, prelude=_LOAD_DICTIONARY)


@case("dictionary", "zip bomb: 2 MB inflating to 2 GiB", isolate=True)
def _dict_zip_bomb(tmp: Path) -> Attempt:
    mib = 1 << 20
    header = _npy_header((2048 * mib // 4,))
    pack = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = pack.compress(header) + pack.flush(zlib.Z_FULL_FLUSH)
    block = pack.compress(bytes(mib)) + pack.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every MiB of zeros
    data = start + block * 2048 + pack.flush()
    path = tmp / "dict.npz"
    _zip(path, [("Z.npy", 8, data, 0, len(header) + 2048 * mib), *_valid_members()])
    return Attempt("ConfounderDictionary.load(ARGS['path'])", names=("dict.npz", "Z.npy", "inflate"),
                   args={"path": str(path)}, prelude=_LOAD_DICTIONARY)


@case("dictionary", "npz cut in half")
def _dict_truncated(tmp: Path) -> Attempt:
    path = _dictionary(tmp / "dict.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return Attempt(_load_dictionary(path), names=("dict.npz", "zip"))


@case("dictionary", "a byte of Z flipped (CRC mismatch)")
def _dict_crc(tmp: Path) -> Attempt:
    path = _dictionary(tmp / "dict.npz")
    data = bytearray(path.read_bytes())
    at = data.index(np.ones(1, dtype=np.float32).tobytes())  # Z's first value, in the stored member
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return Attempt(_load_dictionary(path), names=("dict.npz", "Z.npy", "CRC"))


@case("dictionary", "Z holds strings")
def _dict_strings(tmp: Path) -> Attempt:
    path = _dictionary(tmp / "dict.npz", Z=np.array([["a", "b", "c"], ["d", "e", "f"]]))
    return Attempt(_load_dictionary(path), names=("dict.npz", "Z.npy", "numbers"))


@case("dictionary", "provenance is a JSON list, not an object")
def _dict_provenance_list(tmp: Path) -> Attempt:
    path = _dictionary(tmp / "dict.npz", provenance=np.array("[1, 2]"))
    return Attempt(_load_dictionary(path), names=("dict.npz", "provenance", "JSON object"))


@case("dictionary", "provenance JSON nested 100000 deep")
def _dict_provenance_deep(tmp: Path) -> Attempt:
    path = _dictionary(tmp / "dict.npz", provenance=np.array("[" * 100_000 + "]" * 100_000))
    return Attempt(_load_dictionary(path), names=("dict.npz", "provenance", "nested"))
