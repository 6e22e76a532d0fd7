"""CAER-S loader: folder-per-class frames plus face boxes, in the formats the real dataset uses.

Expected layout (synthetic data is written the same way)::

    <root>/<split>/<Class>/<NNNN>.png                Class in Anger (or Angry), Disgust, Fear,
                                                      Happy, Neutral, Sad, Surprise
    <root>/face_boxes/<split>.txt    or  .json       face boxes, see below

CAER-S ships no face boxes; reproductions use one of two formats, and both are read here:

* text lines ``relpath,label,x1,y1,x2,y2`` (dlib detector output and its hand-corrected version);
  ``relpath`` may or may not start with the split folder; ``label`` must agree with the folder;
* JSON ``{"Anger/0001.png": [x1, y1, x2, y2], ...}`` with float coordinates.

Reversed corners are normalised, boxes past the border are clipped, and an all-zero box (or an image
missing from the box file) means "no face": the subject view is then the whole frame and the
context is left unmasked (``has_box`` is False; :attr:`CAERS.box_counts` reports how many).

Files from a third-party mirror are checked, not trusted. Refused with a
:class:`~reprolib.data.views.DataFormatError` naming the file (and line or key): a split lacking a
class folder or with an empty one, two folders for one class (Angry beside Anger), a box file that is
not UTF-8, is nested JSON, has a non-numeric, boolean or non-finite coordinate, gives one image two
different boxes, or none of whose boxes names an image of the split. Warned about once: exact
repeats of a box, boxes naming images that are not there, and macOS ``._*`` AppleDouble files, which
are skipped.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from pathlib import Path

from reprolib.data.base import Record, SubjectContextDataset, carve_validation
from reprolib.data.views import DataFormatError

CLASSES = ("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
CLASS_ALIASES = {"angry": "Anger"}  # train/Angry in some releases, test/Anger in others
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def canonical_class(folder: str, source: str) -> str:
    """Map a class folder name to its canonical CAER-S name (Angry -> Anger), or fail naming it."""
    for name in CLASSES:
        if folder.lower() == name.lower():
            return name
    if folder.lower() in CLASS_ALIASES:
        return CLASS_ALIASES[folder.lower()]
    raise DataFormatError(f"{source}: unknown class folder {folder!r}; expected one of {CLASSES} (or Angry)")


def _box_key(relpath: str, source: str) -> tuple[str, str]:
    """(canonical class, file name) from a relpath with or without the split folder in front."""
    parts = Path(relpath.strip().replace("\\", "/")).parts
    if len(parts) < 2:
        raise DataFormatError(f"{source}: path {relpath!r} does not name <Class>/<file>")
    return canonical_class(parts[-2], source), parts[-1]


class _Pairs(list):
    """A JSON object as its (key, value) pairs in file order, so duplicate keys are seen, not dropped."""


def _read_utf8(path: Path) -> str:
    """The file as UTF-8 text (a byte-order mark tolerated); unreadable or non-UTF-8 bytes name the file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read face-box file ({err.strerror or err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFormatError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                              f"{err.start}); face-box files are UTF-8") from None


def _finite_box(values: list, where: str) -> list[float]:
    """Four coordinates as floats, refused (naming ``where``) when one is NaN, infinite or too large."""
    try:
        box = [float(v) for v in values]
    except OverflowError:  # a JSON integer too large for a float
        box = [math.inf]
    if not all(math.isfinite(v) for v in box):
        raise DataFormatError(f"{where}: box {values!r} has a non-finite or out-of-range coordinate")
    return box


def read_face_boxes(path: str | Path) -> dict[tuple[str, str], list[float]]:
    """Read a face-box file in the text or JSON format into {(class, file name): [x1, y1, x2, y2]}.

    One image with two different boxes is an error naming both lines (or keys): which one is right
    cannot be guessed. An exact repeat is harmless and only counted in one warning.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: face-box file is missing")
    text = _read_utf8(path)
    boxes: dict[tuple[str, str], list[float]] = {}
    origin: dict[tuple[str, str], str] = {}
    repeats: list[tuple[str, str]] = []

    def add(key: tuple[str, str], box: list[float], here: str, plural: str) -> None:
        if key in boxes:
            if boxes[key] != box:
                raise DataFormatError(f"{path}: {plural} {origin[key]} and {here} give different boxes for "
                                      f"{key[0]}/{key[1]}: {boxes[key]} and {box}")
            repeats.append((f"{plural[:-1]} {here}", f"{plural[:-1]} {origin[key]}"))
            return
        boxes[key], origin[key] = box, here

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_Pairs)
        except RecursionError:
            raise DataFormatError(f"{path}: JSON nested too deeply; expected one flat object "
                                  "mapping 'Class/file.png' to a box") from None
        except ValueError as err:  # JSONDecodeError, or an integer literal past Python's digit limit
            raise DataFormatError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, _Pairs):
            raise DataFormatError(f"{path}: expected a JSON object mapping 'Class/file.png' to a box")
        for rel, box in data:
            where = f"{path} [{rel!r}]"
            if (type(box) is not list or len(box) != 4
                    or not all(type(v) in (int, float) for v in box)):  # type(): True is not a coordinate
                shown = dict(box) if isinstance(box, _Pairs) else box
                raise DataFormatError(f"{where}: box must be a list of 4 numbers, got {shown!r}")
            add(_box_key(rel, where), _finite_box(box, where), repr(rel), "keys")
    else:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            fields = line.strip().split(",")
            if len(fields) != 6:
                raise DataFormatError(f"{where}: expected 'relpath,label,x1,y1,x2,y2', got {line.strip()!r}")
            try:
                label = int(fields[1])
                box = [float(v) for v in fields[2:]]
            except ValueError:
                raise DataFormatError(f"{where}: label and coordinates must be numbers, got {line.strip()!r}") from None
            key = _box_key(fields[0], where)
            if not 0 <= label < len(CLASSES) or CLASSES[label] != key[0]:
                raise DataFormatError(f"{where}: label {label} does not match class folder {key[0]!r}")
            add(key, _finite_box(box, where), str(lineno), "lines")
    if repeats:
        again, first = repeats[0]
        warnings.warn(f"{path}: {len(repeats)} face box(es) repeat an earlier one exactly (e.g. {again} "
                      f"repeats {first}); each image keeps its one box", stacklevel=2)
    return boxes


def find_face_boxes(root: Path, split: str) -> Path | None:
    for suffix in (".txt", ".json"):
        candidate = root / "face_boxes" / f"{split}{suffix}"
        if candidate.exists():
            return candidate
    return None


class CAERS(SubjectContextDataset):
    """CAER-S frames as ``subject`` (face crop), ``context`` (face masked), ``image`` and ``label``.

    ``face_boxes``: a path to a box file, None to look in ``<root>/face_boxes/<split>.{txt,json}``, or
    False to run without boxes (every sample then has ``has_box`` False). Remaining keyword arguments
    go to :class:`~reprolib.data.base.SubjectContextDataset` (sizes, ``normalize``, ``cache``).
    """

    classes = CLASSES

    def __init__(self, root: str | Path, split: str = "train", face_boxes=None, **kwargs):
        self.root = Path(root)
        self.split = split
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise DataFormatError(
                f"{split_dir}: split folder is missing; expected <root>/{split}/<Class>/<NNNN>.png")
        if face_boxes is None:
            face_boxes = find_face_boxes(self.root, split)
            if face_boxes is None:
                raise DataFormatError(
                    f"{self.root / 'face_boxes'}: no {split}.txt or {split}.json face-box file; "
                    "pass face_boxes=<path> or face_boxes=False to use whole frames")
        boxes = read_face_boxes(face_boxes) if face_boxes is not False else {}

        records: list[Record] = []
        seen: set[tuple[str, str]] = set()
        folders: dict[str, Path] = {}
        appledouble = 0
        for folder in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            cls = canonical_class(folder.name, str(folder))
            if cls in folders:  # Angry and Anger side by side: two folders would share one box per name
                raise DataFormatError(f"{split_dir}: class {cls} appears twice, as {folders[cls].name!r} and "
                                      f"{folder.name!r}; keep one folder per class")
            folders[cls] = folder
            label = CLASSES.index(cls)
            found = 0
            for file in sorted(folder.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if file.name.startswith("._"):  # macOS AppleDouble metadata, not an image
                    appledouble += 1
                    continue
                key = (cls, file.name)
                seen.add(key)
                found += 1
                records.append(Record(path=file, box=boxes.get(key), target={"label": label},
                                      source=str(face_boxes) if key in boxes else str(file)))
            if not found:
                raise DataFormatError(f"{folder}: class folder holds no images "
                                      f"({', '.join(sorted(IMAGE_SUFFIXES))}); a split needs every class")
        if not records:
            raise DataFormatError(f"{split_dir}: no images found in class folders")
        missing = [c for c in CLASSES if c not in folders]
        if missing:
            raise DataFormatError(f"{split_dir}: no folder for class(es) {missing}; every CAER-S split has one "
                                  f"folder per class of {list(CLASSES)} (Anger may be spelled Angry)")
        if appledouble:
            warnings.warn(f"{split_dir}: skipped {appledouble} macOS AppleDouble file(s) ('._*' metadata "
                          "copied from a Mac, not images)", stacklevel=2)
        self.box_counts = Counter(
            "none" if r.box is None else ("zero" if not any(r.box) else "given") for r in records)
        unmatched = sorted(set(boxes) - seen)
        self.box_counts["unmatched_in_file"] = len(unmatched)
        if unmatched:
            example = "/".join(unmatched[0])
            if len(unmatched) == len(boxes):
                raise DataFormatError(f"{face_boxes}: none of its {len(boxes)} face boxes names an image of "
                                      f"{split_dir} (e.g. {example}); is it the box file of another split?")
            warnings.warn(f"{face_boxes}: {len(unmatched)} of {len(boxes)} face boxes name images that are not "
                          f"in {split_dir} (e.g. {example}); they are ignored", stacklevel=2)
        if face_boxes is not False and self.box_counts["none"]:
            warnings.warn(f"{face_boxes}: {self.box_counts['none']} of {len(records)} {split} images have "
                          "no face box; they are served as whole frames (has_box=False)", stacklevel=2)
        super().__init__(records, **kwargs)

    @property
    def labels(self):
        return self.targets("label")


def open_caers_splits(root: str | Path, splits=("train", "val", "test", "test_ood"), *,
                      val_fraction: float = 0.125, seed: int = 0, **kwargs) -> dict:
    """Open every requested split that exists under ``root``.

    Real CAER-S ships only train and test: a missing ``val`` is carved from train (``val_fraction``,
    seeded); a missing ``test_ood`` is simply absent from the result. A missing train or test is an
    error. Keyword arguments go to :class:`CAERS`.
    """
    root = Path(root)
    out: dict = {}
    for split in splits:
        if (root / split).is_dir():
            out[split] = CAERS(root, split, **kwargs)
        elif split in ("train", "test"):
            raise DataFormatError(f"{root / split}: required split folder is missing")
    if "val" in splits and "val" not in out:
        out["train"], out["val"] = carve_validation(out["train"], val_fraction, seed)
    return out
