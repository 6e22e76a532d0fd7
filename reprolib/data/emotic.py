"""EMOTIC loader: whole images with annotated body boxes, in the widely used Tandon-style CSV format.

Expected layout (synthetic data from :func:`reprolib.data.synthetic.make_emotic` is written the same
way; the real dataset after the usual ``mat2py`` preprocessing matches it too)::

    <root>/<split>.csv                          split in train, val, test (synthetic data adds test_ood)
    <image_root or root>/<Folder>/<Filename>    the images, e.g. emotic/mscoco/images/COCO_....jpg

Each CSV starts with exactly this header, one row per annotated person (an image with several people
appears in several rows)::

    Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age
    0,framesdb/images,frame_x.jpg,"[640, 426]","[279, 18, 623, 425]","['Affection', 'Peace']","[7, 4, 6]",Female,Adult

* ``Index``: any integer (kept as ``meta["index"]``);
* ``Folder``/``Filename``: the image path relative to ``image_root`` (default ``root``);
* ``Image Size``: ``[W, H]``, two positive numbers;
* ``BBox``: ``[x1, y1, x2, y2]``, the body box in pixels of the stored image. Reversed corners are
  swapped and parts past the border clipped (counted in ``box_stats`` when an item is loaded); a box
  with no area inside ``[0, W] x [0, H]`` is an error, detected at init from ``Image Size``;
* ``Categorical_Labels``: a non-empty list of category names from :data:`CATEGORIES` (exact
  spelling, e.g. ``'Doubt/Confusion'``), served as a float multi-hot ``labels`` tensor [26];
* ``Continuous_Labels``: ``[V, A, D]`` on EMOTIC's 1-10 scale (integers for train, possibly means of
  annotators for val/test), served as float ``vad`` [3] divided by 10 (as the Tandon loader does);
* ``Gender``, ``Age``: free strings (real data has Male/Female and Adult/Teenager/Kid), kept in
  ``Record.meta`` and never interpreted.

List cells are Python literals parsed with :func:`ast.literal_eval` only (never ``eval``); they may be
quoted or, for one-element lists, bare, as CSV writers with minimal quoting produce. A UTF-8 byte
order mark is tolerated.

Each item is a dict with ``subject`` (body crop), ``context`` (the image with this person's box
painted black; other people stay visible), ``image`` (unmasked), ``labels``, ``vad``, ``has_box``
(always True here) and ``index``.

Errors are :class:`~reprolib.data.views.DataFormatError` naming the file, and for CSV problems the
line number: missing CSV, wrong header, wrong number of columns, unparsable cell, unknown category,
VAD outside 1..10, BBox not 4 numbers, box outside the image, an image path that is absolute or has a
``..`` component (annotations from a third-party mirror must not make the loader read files outside
``image_root``; symbolic links inside it are the data owner's layout and are followed), a pose file
that is not a plain ``.npy`` of finite numbers of the right shape. **Missing image files are detected
at init** (one ``stat`` per distinct image; pass ``check_files=False`` to skip that on slow file
systems, and the error then comes when the item is loaded). **Corrupt images are detected when the
item is loaded** (decoding every image up front would cost as much as an epoch).
"""

from __future__ import annotations

import ast
import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from reprolib.data.base import Record, SubjectContextDataset
from reprolib.data.views import DataFormatError, normalise_box, open_image, read_npy_header, size_wh

CATEGORIES = (
    "Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval",
    "Disconnection", "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem",
    "Excitement", "Fatigue", "Fear", "Happiness", "Pain", "Peace", "Pleasure", "Sadness",
    "Sensitivity", "Suffering", "Surprise", "Sympathy", "Yearning",
)
HEADER = ("Index", "Folder", "Filename", "Image Size", "BBox", "Categorical_Labels",
          "Continuous_Labels", "Gender", "Age")
_CATEGORY_INDEX = {name: i for i, name in enumerate(CATEGORIES)}


def _literal(cell: str, column: str, where: str) -> Any:
    """A Python literal from one CSV cell, or a clear error; ``ast.literal_eval`` runs no code."""
    try:
        return ast.literal_eval(cell.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise DataFormatError(f"{where}: cannot parse {column} cell {cell!r} as a Python literal") from None


def _numbers(cell: str, column: str, count: int, where: str) -> list[float]:
    value = _literal(cell, column, where)
    if (not isinstance(value, (list, tuple)) or len(value) != count
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise DataFormatError(f"{where}: {column} must be a list of {count} numbers, got {cell!r}")
    try:
        finite = all(math.isfinite(v) for v in value)
    except OverflowError:  # an integer literal too large for a float
        finite = False
    if not finite:
        raise DataFormatError(f"{where}: {column} {cell!r} has a non-finite or out-of-range value")
    return [float(v) for v in value]


def parse_row(fields: list[str], where: str) -> dict[str, Any]:
    """Check and convert the 9 cells of one CSV row; ``where`` is ``file:line`` for error messages."""
    if len(fields) != len(HEADER):
        raise DataFormatError(f"{where}: expected {len(HEADER)} columns ({','.join(HEADER)}), got {len(fields)}")
    index, folder, filename, size_cell, box_cell, cat_cell, cont_cell, gender, age = fields
    try:
        index_value = int(index)
    except ValueError:
        raise DataFormatError(f"{where}: Index must be an integer, got {index!r}") from None
    if not filename.strip():
        raise DataFormatError(f"{where}: Filename is empty")
    size = _numbers(size_cell, "Image Size", 2, where)
    if min(size) <= 0:
        raise DataFormatError(f"{where}: Image Size {size_cell!r} must be two positive numbers [W, H]")
    box = _numbers(box_cell, "BBox", 4, where)
    names = _literal(cat_cell, "Categorical_Labels", where)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise DataFormatError(f"{where}: Categorical_Labels must be a list of category names, got {cat_cell!r}")
    if not names:
        raise DataFormatError(f"{where}: Categorical_Labels is empty; every person needs at least one category")
    labels = torch.zeros(len(CATEGORIES))
    for name in names:
        if name.strip() not in _CATEGORY_INDEX:
            raise DataFormatError(f"{where}: unknown category {name!r}; expected one of {list(CATEGORIES)}")
        labels[_CATEGORY_INDEX[name.strip()]] = 1.0
    vad = _numbers(cont_cell, "Continuous_Labels", 3, where)
    if not all(1.0 <= v <= 10.0 for v in vad):
        raise DataFormatError(f"{where}: Continuous_Labels {cont_cell!r} must be [V, A, D] within 1..10")
    return {"index": index_value, "folder": folder.strip(), "filename": filename.strip(),
            "size": (size[0], size[1]), "box": box, "labels": labels,
            "vad": torch.tensor(vad) / 10.0, "gender": gender.strip(), "age": age.strip()}


def read_emotic_csv(path: str | Path) -> list[dict[str, Any]]:
    """Parse a Tandon-style EMOTIC CSV into one dict per person (see :func:`parse_row`), with ``line``."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: annotation CSV is missing; expected <root>/<split>.csv "
                              f"with header {','.join(HEADER)}")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataFormatError(f"{path}:1: file is empty; expected the header {','.join(HEADER)}")
            if tuple(h.strip() for h in header) != HEADER:
                raise DataFormatError(f"{path}:1: wrong header {','.join(header)!r}; expected {','.join(HEADER)!r}")
            for fields in reader:
                if not fields or not any(f.strip() for f in fields):
                    continue
                where = f"{path}:{reader.line_num}"
                row = parse_row(fields, where)
                row["line"] = reader.line_num
                rows.append(row)
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not a UTF-8 text file ({err})") from None
    except csv.Error as err:
        raise DataFormatError(f"{path}: malformed CSV ({err})") from None
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read annotation CSV ({err})") from None
    if not rows:
        raise DataFormatError(f"{path}: no annotated persons after the header")
    return rows


def image_path(image_root: Path, folder: str, filename: str, where: str) -> Path:
    """``image_root / Folder / Filename``, refused unless both are plain relative paths.

    Checked on the annotation's text, not with ``Path.resolve``: a ``..`` component or an absolute path
    is what could reach outside ``image_root``, while a symbolic link inside it (a mirror linking
    ``mscoco/images`` to an existing COCO copy) is the data owner's layout and must keep working.
    """
    shown = f"Folder {folder!r}, Filename {filename!r}"
    if "\x00" in folder or "\x00" in filename:
        raise DataFormatError(f"{where}: image path ({shown}) contains a NUL byte")
    for part in (folder, filename):
        if Path(part).anchor:
            raise DataFormatError(f"{where}: image path ({shown}) is absolute; Folder and Filename must be "
                                  f"relative to the image root {image_root}")
        if ".." in Path(part).parts:
            raise DataFormatError(f"{where}: image path ({shown}) has a '..' component; Folder and Filename "
                                  f"must stay inside the image root {image_root}")
    return image_root / folder / filename


def read_pose(path: Path, rows: int) -> np.ndarray:
    """The ``[rows, joints, 3]`` keypoint array of a split, every problem named with the file.

    The header is checked before any data is read (a header can declare terabytes; numpy allocates
    what it declares), then the values: keypoints must be finite numbers.
    """
    if not path.is_file():
        raise DataFormatError(f"{path}: pose file is missing (one [rows, joints, 3] array per split, "
                              "e.g. from a pose estimator, aligned with the CSV rows)")
    try:
        with open(path, "rb") as fh:
            shape, dtype, declared = read_npy_header(fh, str(path))
            stored = path.stat().st_size - fh.tell()
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read pose file ({err})") from None
    if dtype.kind not in "fiu" or dtype.names is not None:
        raise DataFormatError(f"{path}: holds {dtype} values; pose keypoints must be numbers (x, y, confidence)")
    if len(shape) != 3 or shape[0] != rows or shape[2] != 3:
        raise DataFormatError(f"{path}: expected shape [{rows}, joints, 3], got {list(shape)}")
    if stored != declared:
        problem = "truncated" if stored < declared else "followed by extra bytes"
        raise DataFormatError(f"{path}: {problem}: the header declares {declared} bytes of {dtype} for shape "
                              f"{list(shape)}, the file holds {stored}")
    try:
        poses = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(f"{path}: not a plain numpy array ({err})") from None
    bad = ~np.isfinite(poses)
    if bad.any():
        raise DataFormatError(f"{path}: {int(bad.sum())} non-finite value(s) (NaN or inf), the first in row "
                              f"{int(np.argwhere(bad)[0][0])}; pose keypoints must be finite")
    return poses


class Emotic(SubjectContextDataset):
    """EMOTIC persons as ``subject`` (body crop), ``context`` (body masked), ``image``, ``labels``, ``vad``.

    ``csv``: an explicit annotation file instead of ``<root>/<split>.csv``. ``image_root``: where the
    ``Folder`` paths start (default ``root``). ``check_files``: stat every image at init so a missing
    file fails early with its CSV line. Remaining keyword arguments go to
    :class:`~reprolib.data.base.SubjectContextDataset` (sizes as an int or (height, width),
    ``normalize``, ``cache``); for bodies a tall subject size such as ``(64, 32)`` fits best.
    """

    categories = CATEGORIES

    EXTRA_VIEWS = ("pose", "depth")

    def __init__(self, root: str | Path, split: str = "train", csv: str | Path | None = None,
                 image_root: str | Path | None = None, check_files: bool = True,
                 extra_views: tuple[str, ...] = (), **kwargs):
        unknown = sorted(set(extra_views) - set(self.EXTRA_VIEWS))
        if unknown:
            raise ValueError(f"unknown extra view(s) {unknown}; available: {self.EXTRA_VIEWS}")
        self.extra_views = tuple(extra_views)
        self.root = Path(root)
        self.split = split
        self.csv_path = Path(csv) if csv is not None else self.root / f"{split}.csv"
        self.image_root = Path(image_root) if image_root is not None else self.root
        rows = read_emotic_csv(self.csv_path)

        records: list[Record] = []
        checked: dict[Path, bool] = {}
        for row in rows:
            where = f"{self.csv_path}:{row['line']}"
            path = image_path(self.image_root, row["folder"], row["filename"], where)
            # Fail now, with the line, for a box that cannot lie inside the image it annotates.
            normalise_box(row["box"], row["size"][0], row["size"][1], where)
            if check_files:
                if path not in checked:
                    checked[path] = path.is_file()
                if not checked[path]:
                    raise DataFormatError(f"{where}: image file {path} is missing")
            records.append(Record(
                path=path, box=row["box"], target={"labels": row["labels"], "vad": row["vad"]},
                source=where, meta={"index": row["index"], "image_size": row["size"],
                                    "gender": row["gender"], "age": row["age"]}))
        if "pose" in self.extra_views:
            self._attach_pose(records, rows)
        super().__init__(records, **kwargs)
        self._depth_cache: dict[int, torch.Tensor] = {}

    def _attach_pose(self, records: list[Record], rows: list[dict[str, Any]]) -> None:
        """Keypoints from ``<root>/pose/<split>.npy`` ([rows, joints, (x, y, confidence)] in image pixels,
        row i = CSV row i), served as ``pose`` with x, y relative to the person's body box."""
        poses = read_pose(self.root / "pose" / f"{self.split}.npy", len(rows))
        for rec, row, pose in zip(records, rows, poses):
            box, _ = normalise_box(row["box"], row["size"][0], row["size"][1], rec.source)
            scale = np.array([box[2] - box[0], box[3] - box[1]], dtype=np.float32)
            xy = (pose[:, :2] - np.array(box[:2], dtype=np.float32)) / scale
            rec.target["pose"] = torch.from_numpy(np.concatenate([xy, pose[:, 2:]], axis=1).astype(np.float32))

    def _depth(self, index: int) -> torch.Tensor:
        """The image's depth map ``<root>/depth/<Folder>/<stem>.png`` as [1, H, W] in [0, 1], image-sized."""
        if index in self._depth_cache:
            return self._depth_cache[index]
        rec = self.records[index]
        path = self.root / "depth" / rec.path.relative_to(self.image_root).with_suffix(".png")
        depth = open_image(path, "L", what="depth map",
                           missing_hint=" (one 8- or 16-bit PNG per image, bright = near)")
        arr = np.asarray(depth.resize(size_wh(self.sizes[2]), Image.BILINEAR), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(arr)[None]
        if self.cache:
            self._depth_cache[index] = tensor
        return tensor

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        if "depth" in self.extra_views:
            item["depth"] = self._depth(item["index"])
        return item

    @property
    def labels(self) -> torch.Tensor:
        """Multi-hot labels of every person, N x 26, without opening any image."""
        return self.targets("labels")

    @property
    def vad(self) -> torch.Tensor:
        """Continuous (V, A, D) / 10 of every person, N x 3, without opening any image."""
        return self.targets("vad")

    def image_groups(self) -> dict[Path, list[int]]:
        """Row indices grouped by image file: the people who share a picture."""
        groups: dict[Path, list[int]] = {}
        for i, rec in enumerate(self.records):
            groups.setdefault(rec.path, []).append(i)
        return groups
