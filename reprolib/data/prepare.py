"""Write the inputs the real datasets do not ship, from detectors the user runs with weights they hold.

CAER-S ships no face boxes and EMOTIC no pose keypoints or depth maps, yet the loaders read them.
The functions here turn any detector's output into exactly the files :mod:`reprolib.data.caers` and
:mod:`reprolib.data.emotic` read (the synthetic generator writes the same formats):

* **face boxes** (:func:`write_face_boxes`): ``<root>/face_boxes/<split>.txt``, lines
  ``Class/file,label,x1,y1,x2,y2``, or ``.json`` ``{"Class/file": [x1, y1, x2, y2]}``; from any face
  detector's boxes and scores per frame, e.g. torchvision ``fasterrcnn_resnet50_fpn`` fine-tuned on faces;
* **pose** (:func:`write_pose`): ``<root>/pose/<split>.npy``, float32 ``[CSV rows, joints, (x, y,
  confidence)]`` in image pixels, row i for CSV row i; from torchvision ``keypointrcnn_resnet50_fpn``
  (COCO's 17 keypoints per detected person);
* **depth** (:func:`write_depth`): ``<root>/depth/<Folder>/<stem>.png``, 8-bit grey at the image's size,
  bright = near (the loader serves it / 255); from a monocular depth model the user runs (MiDaS, Depth
  Anything), one H x W array per image.

Detector outputs come in torchvision's shape, one dict per image keyed by the image's path: ``boxes``
[N, 4] (x1, y1, x2, y2 in pixels of the stored image), ``scores`` [N], optionally ``labels`` [N], and for
people ``keypoints`` [N, 17, 3] plus ``keypoints_scores`` [N, 17]. :func:`face_detections` and
:func:`person_detections` turn those into the writers' inputs; :func:`save_outputs` saves them as the
JSON the ``prepare-inputs`` command reads; :func:`load_torchvision_detector` and :func:`detect` run a
torchvision detector from a local weights file (never downloading anything) for users who want that.

Every file is written to a temporary sibling and renamed into place (:mod:`reprolib.atomic`). Bad input
raises :class:`~reprolib.data.views.DataFormatError` naming the image (and the file it came from).
Importing this module pulls in neither torch nor PIL (the loaders that need them are imported inside the
functions), so registering the command keeps ``reprolib --help`` fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from reprolib import atomic
from reprolib.data.errors import DataFormatError

FACE_FORMATS = ("txt", "json")
POSE_LAYOUTS = ("emoticon", "coco")
DEPTH_KINDS = ("disparity", "depth")
EMOTIC_SPLITS = ("train", "val", "test", "test_ood")
COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")
# EmotiCon's default pose input (n_joints=10) is the synthetic data's joints (reprolib.data.draw.JOINTS);
# each is one COCO keypoint, or the mean of two (the neck: between the shoulders, the less sure one's
# confidence). "r" is the person's right, as in COCO and in the synthetic drawings.
COCO_TO_JOINTS = {
    "head": ("nose",), "neck": ("left_shoulder", "right_shoulder"),
    "r_shoulder": ("right_shoulder",), "r_hand": ("right_wrist",),
    "l_shoulder": ("left_shoulder",), "l_hand": ("left_wrist",),
    "r_hip": ("right_hip",), "r_foot": ("right_ankle",),
    "l_hip": ("left_hip",), "l_foot": ("left_ankle",),
}
MIN_IOU = 0.3  # below this a detected person is not taken to be the annotated one
MAX_ASPECT_MISMATCH = 0.1  # depth map vs image width/height ratio: beyond it the map is transposed or another image's
TORCHVISION_DETECTORS = ("fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
                         "retinanet_resnet50_fpn", "fcos_resnet50_fpn", "keypointrcnn_resnet50_fpn")

FaceDetection = tuple[Sequence[float], float]
PersonDetection = tuple[Sequence[float], float, Any]  # box, score, keypoints [17, 3] (x, y, confidence)


# ---------------------------------------------------------------------------------------------------
# Shared checks
# ---------------------------------------------------------------------------------------------------

def _numpy(value: Any) -> np.ndarray:
    """A float64 array from a list, an array or a torch tensor (on any device)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _array(value: Any, shape: tuple[int | None, ...], what: str, where: str) -> np.ndarray:
    """``value`` as a finite float array of ``shape`` (None: any length), or an error naming ``where``."""
    try:
        arr = _numpy(value)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{where}: {what} is not an array of numbers ({err})") from None
    if arr.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, arr.shape)):
        wanted = "[" + ", ".join("N" if n is None else str(n) for n in shape) + "]"
        raise DataFormatError(f"{where}: {what} must have shape {wanted}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise DataFormatError(f"{where}: {what} has a non-finite value (NaN or inf)")
    return arr


def _score(value: Any, where: str) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(f"{where}: score {value!r} is not a number") from None
    if not math.isfinite(score):
        raise DataFormatError(f"{where}: score {value!r} is not finite")
    return score


def _listed(items: Any, what: str, where: str) -> list:
    """The detections of one image as a list (an image's entry must be a list, even an empty one)."""
    if isinstance(items, (str, bytes, Mapping)):
        raise DataFormatError(f"{where}: expected a list of {what}, got {type(items).__name__}")
    try:
        return list(items)
    except TypeError:
        raise DataFormatError(f"{where}: expected a list of {what}, got {type(items).__name__}") from None


def _sorted_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    x1, x2 = sorted((float(box[0]), float(box[2])))
    y1, y2 = sorted((float(box[1]), float(box[3])))
    return x1, y1, x2, y2


def image_key(relpath: str) -> str:
    """An image path as one spelling (forward slashes, no ``./``), so keys from any tool compare equal."""
    return PurePosixPath(str(relpath).strip().replace("\\", "/")).as_posix()


# ---------------------------------------------------------------------------------------------------
# CAER-S face boxes
# ---------------------------------------------------------------------------------------------------

def choose_face(faces: Sequence[FaceDetection], where: str, min_score: float = -math.inf) -> list[float] | None:
    """The box of the highest-scoring face at or above ``min_score`` (the first one on a tie), else None.

    Why the highest score: a CAER-S clip is cut around the speaker, whose face is the large, frontal,
    sharp one, which is the one detectors are surest of; background faces are smaller and blurred.
    Every box and score is checked (a NaN anywhere means a broken detector run), not only the chosen one.
    """
    best: tuple[float, list[float]] | None = None
    for i, face in enumerate(_listed(faces, "faces", where)):
        here = f"{where} detection {i}"
        try:
            raw, raw_score = face
        except (TypeError, ValueError):
            raise DataFormatError(f"{here}: expected (box [x1, y1, x2, y2], score), got {face!r}") from None
        box = _array(raw, (4,), "box", here).tolist()
        score = _score(raw_score, here)
        x1, y1, x2, y2 = _sorted_box(box)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            raise DataFormatError(f"{here}: box {box} has no area")
        if score >= min_score and (best is None or score > best[0]):
            best = (score, box)
    return None if best is None else best[1]


def _caers_images(split_dir: Path) -> dict[tuple[str, str], str]:
    """{(canonical class, file name): 'Folder/file'} of every image the CAER-S loader serves in a split."""
    from reprolib.data.caers import IMAGE_SUFFIXES, canonical_class

    if not split_dir.is_dir():
        raise DataFormatError(f"{split_dir}: split folder is missing; expected <root>/<split>/<Class>/<file>")
    images: dict[tuple[str, str], str] = {}
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cls = canonical_class(folder.name, str(folder))
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES and not file.name.startswith("._"):
                images[(cls, file.name)] = f"{folder.name}/{file.name}"
    if not images:
        raise DataFormatError(f"{split_dir}: no images in its class folders")
    return images


def write_face_boxes(root: str | Path, split: str, detections: Mapping[str, Sequence[FaceDetection]], *,
                     format: str = "txt", min_score: float = -math.inf,
                     source: str = "face detections") -> dict[str, int]:
    """Write ``<root>/face_boxes/<split>.<format>`` from a face detector's output; returns the counts.

    ``detections`` maps an image path ``<Class>/<file>`` (or ``<split>/<Class>/<file>``; a path under
    another split's folder is skipped and counted) to its detected faces as (box [x1, y1, x2, y2],
    score) pairs in pixels. Each image gets the box of its highest-scoring face (:func:`choose_face`);
    an image of the split with no face at or above ``min_score`` (or absent from ``detections``) gets
    the all-zero box, which the loader serves as the whole frame with ``has_box`` False. Every image
    of ``<root>/<split>`` gets a line, so the loader never has to guess.

    Refused, naming the image and ``source``: a non-finite or empty box or score, an unknown class
    folder, a path naming no image of the split, two paths for one image, a comma in a file name (the
    text format is comma-separated; use ``format="json"``). A JSON file is refused while a text file
    for the split exists (the loader would keep reading the text file).
    """
    from reprolib.data.caers import CLASSES, _box_key

    if format not in FACE_FORMATS:
        raise ValueError(f"format must be one of {FACE_FORMATS}, got {format!r}")
    root = Path(root)
    images = _caers_images(root / split)
    target = root / "face_boxes" / f"{split}.{format}"
    text_file = target.with_suffix(".txt")
    if format == "json" and text_file.exists():
        raise FileExistsError(f"{text_file}: exists, and the loader reads it before {target.name}; remove it "
                              "or write format='txt'")
    chosen: dict[tuple[str, str], list[float] | None] = {}
    named: dict[tuple[str, str], str] = {}
    other_split = 0
    for rel, faces in detections.items():
        where = f"{source} [{rel!r}]"
        parts = PurePosixPath(image_key(rel)).parts
        if len(parts) >= 3 and parts[-3] != split:
            other_split += 1
            continue
        key = _box_key(rel, where)
        if key not in images:
            raise DataFormatError(f"{where}: names no image of {root / split} (no {key[0]}/{key[1]} there)")
        if key in named:
            raise DataFormatError(f"{source}: {named[key]!r} and {rel!r} name the same image {images[key]}")
        named[key] = rel
        chosen[key] = choose_face(faces, where, min_score)
    if not named:
        raise DataFormatError(f"{source}: none of its {len(detections)} image(s) is in {root / split}")
    lines, boxes, with_face = [], {}, 0
    for key, rel in sorted(images.items()):
        box = chosen.get(key) or [0.0, 0.0, 0.0, 0.0]
        with_face += key in chosen and chosen[key] is not None
        if format == "txt":
            if "," in rel or "\n" in rel:
                raise DataFormatError(f"{root / split / rel}: a comma or newline in the path cannot go in the "
                                      "comma-separated text format; write format='json'")
            lines.append(",".join([rel, str(CLASSES.index(key[0]))] + [repr(float(v)) for v in box]))
        else:
            boxes[rel] = [float(v) for v in box]
    text = "\n".join(lines) + "\n" if format == "txt" else json.dumps(boxes, indent=1) + "\n"
    atomic.write_text(target, text)
    if format == "txt" and target.with_suffix(".json").exists():
        warnings.warn(f"{target.with_suffix('.json')}: now shadowed by {target.name}, which the loader reads "
                      "first", stacklevel=2)
    return {"images": len(images), "with_face": with_face, "without_face": len(images) - with_face,
            "other_split": other_split}


# ---------------------------------------------------------------------------------------------------
# EMOTIC pose
# ---------------------------------------------------------------------------------------------------

def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes (corners in any order); 0 for empty ones."""
    ax1, ay1, ax2, ay2 = _sorted_box(a)
    bx1, by1, bx2, by2 = _sorted_box(b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def match_people(annotated: Sequence[Sequence[float]], detected: Sequence[Sequence[float]],
                 scores: Sequence[float] | None = None, min_iou: float = MIN_IOU) -> list[int | None]:
    """For each annotated body box, the index of its detected person, or None; one detection per person.

    The rule: pairs are taken in order of decreasing IoU (ties: the higher detection score, then the
    earlier annotation and detection), skipping pairs whose person or detection is already taken and
    pairs below ``min_iou``. A lone annotated person so gets the detection of highest IoU; two people
    standing close never share one skeleton, the closer fit wins it and the other gets its next best.
    """
    scores = list(scores) if scores is not None else [0.0] * len(detected)
    pairs = sorted(((box_iou(a, d), scores[j], -i, -j) for i, a in enumerate(annotated)
                    for j, d in enumerate(detected)), reverse=True)
    match: list[int | None] = [None] * len(annotated)
    taken: set[int] = set()
    for iou, _, i, j in pairs:
        if iou < min_iou or iou <= 0:
            break
        if match[-i] is None and -j not in taken:
            match[-i] = -j
            taken.add(-j)
    return match


def coco_to_layout(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """COCO keypoints [..., 17, 3] in the pose layout the model reads: ``coco`` as is, ``emoticon`` as
    the 10 joints of :data:`reprolib.data.draw.JOINTS` (:data:`COCO_TO_JOINTS`)."""
    if layout == "coco":
        return keypoints
    if layout != "emoticon":
        raise ValueError(f"pose layout must be one of {POSE_LAYOUTS}, got {layout!r}")
    from reprolib.data.draw import JOINTS

    out = []
    for joint in JOINTS:
        idx = [COCO_KEYPOINTS.index(name) for name in COCO_TO_JOINTS[joint]]
        xy = keypoints[..., idx, :2].mean(axis=-2)
        out.append(np.concatenate([xy, keypoints[..., idx, 2].min(axis=-1, keepdims=True)], axis=-1))
    return np.stack(out, axis=-2)


def _emotic_rows(root: Path, split: str, csv: str | Path | None) -> tuple[Path, list[dict[str, Any]]]:
    from reprolib.data.emotic import read_emotic_csv

    path = Path(csv) if csv is not None else root / f"{split}.csv"
    return path, read_emotic_csv(path)


def _index(keys: Sequence[str], normalise: Any, source: str) -> dict[str, str]:
    """{normalised key: key as given}; two spellings of one image are an error naming both."""
    out: dict[str, str] = {}
    for key in keys:
        norm = normalise(key)
        if norm in out:
            raise DataFormatError(f"{source}: {out[norm]!r} and {key!r} name the same image")
        out[norm] = key
    return out


def _check_known(keys: Sequence[str], known: Any, source: str, where: str) -> int:
    """How many of ``keys`` name none of ``known``; an error when that is all of them (wrong split or file)."""
    unused = sum(image_key(k) not in known for k in keys)
    if unused == len(keys):
        example = f" (e.g. {keys[0]!r})" if keys else ""
        raise DataFormatError(f"{source}: none of its {len(keys)} image(s) is annotated in {where}{example}; "
                              "expected keys 'Folder/Filename' as in the CSV")
    return unused


def write_pose(root: str | Path, split: str, detections: Mapping[str, Sequence[PersonDetection]], *,
               csv: str | Path | None = None, layout: str = "emoticon", min_iou: float = MIN_IOU,
               min_score: float = -math.inf, source: str = "person detections") -> dict[str, int]:
    """Write ``<root>/pose/<split>.npy`` for EmotiCon's pose stream from a keypoint detector; returns counts.

    ``detections`` maps an image path ``Folder/Filename`` (as in the CSV) to its detected people as
    (box [x1, y1, x2, y2], score, keypoints [17, 3] of COCO (x, y, confidence) in image pixels), as
    :func:`person_detections` makes from torchvision's ``keypointrcnn_resnet50_fpn``. People scoring
    below ``min_score`` are dropped; each annotated person (CSV ``BBox``, clipped as the loader clips it)
    gets the skeleton of :func:`match_people`.

    Written: float32 ``[CSV rows, joints, 3]``, row i for CSV row i, (x, y) in image pixels and the
    confidence; ``layout="emoticon"`` gives the 10 joints EmotiCon reads by default, ``"coco"`` all 17
    (build ``EmotiCon(n_joints=17)``). A person no detection matches (or whose image is absent) gets
    every joint at the top-left corner of their box with confidence 0: the loader, which serves (x, y)
    relative to the box, then gives an all-zero pose, "nothing seen". Images not in the CSV are
    ignored (one detections file may cover every split) and counted.
    """
    from reprolib.data.views import normalise_box

    root = Path(root)
    csv_path, rows = _emotic_rows(root, split, csv)
    people: dict[str, list[int]] = {}
    for r, row in enumerate(rows):
        people.setdefault(image_key(str(PurePosixPath(row["folder"], row["filename"]))), []).append(r)
    keys = list(detections)
    unused = _check_known(keys, people, source, str(csv_path))
    n_joints = len(coco_to_layout(np.zeros((17, 3)), layout))
    poses = np.zeros((len(rows), n_joints, 3), dtype=np.float32)
    boxes = [normalise_box(row["box"], row["size"][0], row["size"][1], f"{csv_path}:{row['line']}")[0]
             for row in rows]
    for r, box in enumerate(boxes):
        poses[r, :, :2] = box[:2]
    found = _index(keys, image_key, source)
    matched = seen = 0
    for image, members in people.items():
        if image not in found:
            continue
        where = f"{source} [{found[image]!r}]"
        persons = []
        for i, person in enumerate(_listed(detections[found[image]], "people", where)):
            here = f"{where} person {i}"
            try:
                box, score, keypoints = person
            except (TypeError, ValueError):
                raise DataFormatError(f"{here}: expected (box, score, keypoints [17, 3])") from None
            box = _array(box, (4,), "box", here)
            persons.append((box, _score(score, here), _array(keypoints, (17, 3), "keypoints", here)))
        persons = [p for p in persons if p[1] >= min_score]
        seen += bool(persons)
        match = match_people([boxes[r] for r in members], [p[0] for p in persons], [p[1] for p in persons],
                             min_iou)
        for r, j in zip(members, match):
            if j is not None:
                poses[r] = coco_to_layout(persons[j][2], layout)
                matched += 1
    with atomic.replacing(root / "pose" / f"{split}.npy", suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, poses, allow_pickle=False)
    return {"rows": len(rows), "matched": matched, "unmatched": len(rows) - matched,
            "images": len(people), "images_with_people": seen, "unused_images": unused}


# ---------------------------------------------------------------------------------------------------
# EMOTIC depth
# ---------------------------------------------------------------------------------------------------

def normalise_depth(depth: Any, *, kind: str = "disparity", size: tuple[int, int] | None = None,
                    source: str = "depth map") -> np.ndarray:
    """A depth model's output (any scale) as the 8-bit map the loader reads: uint8 [H, W], bright = near.

    Monocular models give depth only up to an unknown scale and shift per image (MiDaS, Depth Anything:
    relative inverse depth, ``kind="disparity"``, large = near; metric models: ``kind="depth"``, large =
    far), so each map is stretched to its own min..max: nearest 255, farthest 0 (a constant map: 0). It
    is resized to ``size`` (width, height; the image's, from the CSV) bilinearly before the rounding.
    A [1, H, W] or [1, 1, H, W] prediction is taken as [H, W]. Refused, naming ``source``: another rank,
    a non-finite value, and a width/height ratio off the image's by more than 10 % (a transposed array
    or another image's map).
    """
    from PIL import Image

    if kind not in DEPTH_KINDS:
        raise ValueError(f"depth kind must be one of {DEPTH_KINDS}, got {kind!r}")
    try:
        arr = _numpy(depth)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{source}: not an array of numbers ({err})") from None
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    arr = _array(arr, (None, None), "depth map", source)
    if min(arr.shape) < 1:
        raise DataFormatError(f"{source}: depth map is empty ({list(arr.shape)})")
    lo, hi = float(arr.min()), float(arr.max())
    near = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    if kind == "depth" and hi > lo:
        near = 1.0 - near
    if size is not None and (size[0], size[1]) != (arr.shape[1], arr.shape[0]):
        ratio = (arr.shape[1] / arr.shape[0]) / (size[0] / size[1])
        if abs(ratio - 1.0) > MAX_ASPECT_MISMATCH:
            raise DataFormatError(f"{source}: depth map is {arr.shape[1]}x{arr.shape[0]} (W x H) for a "
                                  f"{size[0]}x{size[1]} image; transposed, or another image's map?")
        near = np.asarray(Image.fromarray(near.astype(np.float32)).resize(
            (int(size[0]), int(size[1])), Image.BILINEAR), dtype=np.float64)
    return np.clip(np.round(near * 255.0), 0, 255).astype(np.uint8)


def write_depth(root: str | Path, depth_maps: Mapping[str, Any], *, splits: Sequence[str] | None = None,
                kind: str = "disparity", allow_missing: bool = False,
                source: str = "depth maps") -> dict[str, int]:
    """Write ``<root>/depth/<Folder>/<stem>.png`` for every annotated image; returns the counts.

    ``depth_maps`` maps an image path ``Folder/Filename`` (the file suffix may differ or be left out:
    the loader's depth file is named by the stem) to the model's H x W output, any scale, normalised
    by :func:`normalise_depth` and resized to the CSV's ``Image Size``. The images are those of
    ``<root>/<split>.csv`` for ``splits`` (default: every split CSV present); one image in several
    splits or rows gets one map. An annotated image without a map is an error naming it (the loader
    would fail on it mid-epoch) unless ``allow_missing`` (writing in batches). Keys that name no
    annotated image are ignored and counted; all of them unknown is an error.
    """
    from reprolib.data.emotic import image_path

    root = Path(root)
    if splits is None:
        splits = [s for s in EMOTIC_SPLITS if (root / f"{s}.csv").is_file()]
        if not splits:
            raise DataFormatError(f"{root}: no split CSV ({', '.join(s + '.csv' for s in EMOTIC_SPLITS)})")
    images: dict[str, tuple[Path, tuple[int, int]]] = {}  # 'Folder/stem' -> (depth file, image size)
    for split in splits:
        csv_path, rows = _emotic_rows(root, split, None)
        for row in rows:
            where = f"{csv_path}:{row['line']}"
            png = image_path(root / "depth", row["folder"], row["filename"], where).with_suffix(".png")
            stem = image_key(str(PurePosixPath(row["folder"], row["filename"]).with_suffix("")))
            images.setdefault(stem, (png, (int(round(row["size"][0])), int(round(row["size"][1])))))

    def stem_of(key: str) -> str:
        key = image_key(key)
        return key if key in images else image_key(str(PurePosixPath(key).with_suffix("")))

    keys = list(depth_maps)
    unused = _check_known([stem_of(k) for k in keys], images, source, ", ".join(f"{s}.csv" for s in splits))
    given = _index(keys, stem_of, source)
    missing = sorted(set(images) - set(given))
    if missing and not allow_missing:
        raise DataFormatError(f"{source}: no depth map for {len(missing)} of {len(images)} annotated image(s), "
                              f"e.g. {missing[0]!r}; pass allow_missing=True (--allow-missing) to write the rest")
    for stem, key in given.items():
        if stem not in images:
            continue
        png, size = images[stem]
        where = f"{source} [{key!r}]"
        try:
            depth = depth_maps[key]
        except (ValueError, OSError, EOFError) as err:  # an .npz entry that is pickled or corrupt
            raise DataFormatError(f"{where}: cannot read the depth map ({err})") from None
        pixels = normalise_depth(depth, kind=kind, size=size, source=where)
        _save_grey_png(pixels, png)
    return {"images": len(images), "written": len(images) - len(missing), "missing": len(missing),
            "unused": unused}


def _save_grey_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic.replacing(path, suffix=".png") as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


# ---------------------------------------------------------------------------------------------------
# torchvision detection outputs
# ---------------------------------------------------------------------------------------------------

def _fields(output: Any, names: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(output, Mapping):
        raise DataFormatError(f"{where}: expected a detection dict with {', '.join(names)}, got "
                              f"{type(output).__name__}")
    absent = [n for n in names if n not in output]
    if absent:
        raise DataFormatError(f"{where}: detection dict lacks {', '.join(absent)} (has {', '.join(map(str, output))})")
    return output


def face_detections(outputs: Mapping[str, Mapping[str, Any]], *, label: int | None = None,
                    source: str = "detector outputs") -> dict[str, list[FaceDetection]]:
    """torchvision detection outputs ({image path: {"boxes" [N, 4], "scores" [N], "labels" [N]}}) as the
    input of :func:`write_face_boxes`. ``label``: keep only detections of that class (a face detector
    fine-tuned from ``fasterrcnn_resnet50_fpn`` with classes background, face: ``label=1``)."""
    out: dict[str, list[FaceDetection]] = {}
    for rel, output in outputs.items():
        where = f"{source} [{rel!r}]"
        output = _fields(output, ("boxes", "scores") + (("labels",) if label is not None else ()), where)
        boxes = _array(output["boxes"], (None, 4), "boxes", where)
        scores = _array(output["scores"], (len(boxes),), "scores", where)
        keep = np.ones(len(boxes), dtype=bool)
        if label is not None:
            keep = _array(output["labels"], (len(boxes),), "labels", where) == label
        out[rel] = [(b.tolist(), float(s)) for b, s, k in zip(boxes, scores, keep) if k]
    return out


def person_detections(outputs: Mapping[str, Mapping[str, Any]], *,
                      source: str = "detector outputs") -> dict[str, list[PersonDetection]]:
    """torchvision Keypoint R-CNN outputs ({image path: {"boxes", "scores", "keypoints" [N, 17, 3],
    "keypoints_scores" [N, 17]}}) as the input of :func:`write_pose`.

    torchvision's third keypoint column is a constant visibility flag (1); the per-keypoint evidence is
    ``keypoints_scores``, an unbounded heatmap logit, so the confidence written is its sigmoid (0..1,
    the range the synthetic data's confidences have). Without ``keypoints_scores`` the third column is
    kept as given (another estimator's confidence)."""
    out: dict[str, list[PersonDetection]] = {}
    for rel, output in outputs.items():
        where = f"{source} [{rel!r}]"
        output = _fields(output, ("boxes", "scores", "keypoints"), where)
        boxes = _array(output["boxes"], (None, 4), "boxes", where)
        scores = _array(output["scores"], (len(boxes),), "scores", where)
        keypoints = _array(output["keypoints"], (len(boxes), 17, 3), "keypoints", where).copy()
        if "keypoints_scores" in output:
            logits = _array(output["keypoints_scores"], (len(boxes), 17), "keypoints_scores", where)
            keypoints[..., 2] = 0.5 * (1.0 + np.tanh(logits / 2.0))  # the sigmoid, without overflow
        out[rel] = [(b.tolist(), float(s), k) for b, s, k in zip(boxes, scores, keypoints)]
    return out


def save_outputs(path: str | Path, outputs: Mapping[str, Mapping[str, Any]]) -> Path:
    """Save detection outputs ({image path: torchvision dict}) as the JSON ``prepare-inputs`` reads.

    Tensors and arrays become nested lists; keys other than boxes, scores, labels, keypoints and
    keypoints_scores (masks, for one) are left out."""
    keep = ("boxes", "scores", "labels", "keypoints", "keypoints_scores")
    data = {str(rel): {k: _numpy(v).tolist() for k, v in output.items() if k in keep}
            for rel, output in outputs.items()}
    path = Path(path)
    atomic.write_text(path, json.dumps(data))
    return path


def read_outputs(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a detections JSON written by :func:`save_outputs` (or by hand in that shape)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read detections file ({err.strerror or err})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise DataFormatError(f"{path}: not a JSON detections file ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataFormatError(f"{path}: expected a JSON object mapping each image path to a detection dict "
                              '{"boxes": [[x1, y1, x2, y2], ...], "scores": [...], ...}')
    return data


class NpyFolder(Mapping):
    """Depth maps saved as one ``.npy`` per image under a folder that mirrors the images' paths
    (``<folder>/<Folder>/<stem>.npy``), read one at a time when asked for, keyed ``Folder/stem.npy``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataFormatError(f"{self.folder}: depth-map folder is missing")
        self._files = {p.relative_to(self.folder).as_posix(): p for p in sorted(self.folder.rglob("*.npy"))}
        if not self._files:
            raise DataFormatError(f"{self.folder}: holds no .npy depth maps")

    def __getitem__(self, key: str) -> np.ndarray:
        path = self._files[key]
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataFormatError(f"{path}: not a plain numpy array ({err})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def read_depth_maps(path: str | Path) -> Mapping[str, Any]:
    """Depth maps from a folder of ``.npy`` files (:class:`NpyFolder`) or one ``.npz`` keyed by image path."""
    path = Path(path)
    if path.is_dir():
        return NpyFolder(path)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(f"{path}: not a depth-map folder or .npz archive ({err})") from None


# ---------------------------------------------------------------------------------------------------
# Running a torchvision detector from local weights (optional: any detector's saved outputs will do)
# ---------------------------------------------------------------------------------------------------

def load_torchvision_detector(arch: str, weights: str | Path, *, device: str = "cpu", **kwargs: Any):
    """A torchvision detection model built with no weights (nothing is downloaded), then given the
    user's local state dict, read with ``torch.load(weights_only=True)`` (no code in the file runs).

    ``arch``: one of :data:`TORCHVISION_DETECTORS`. ``num_classes`` (and ``num_keypoints``) are read from
    the state dict unless given. Accepted files: a bare state dict, a checkpoint of torchvision's
    reference training scripts (``{"model": state_dict, ...}``) or one with ``state_dict``. Unreadable,
    unsafe or misfitting files raise :class:`~reprolib.models.backbones.CheckpointError` naming the file.
    """
    from torchvision.models import detection

    from reprolib.models.backbones import CheckpointError, _read_checkpoint, _state_dict_of, state_dict_mismatch

    if arch not in TORCHVISION_DETECTORS:
        raise ValueError(f"arch must be one of {TORCHVISION_DETECTORS}, got {arch!r}")
    weights = Path(weights)
    state = _read_checkpoint(weights)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    state = _state_dict_of(state, weights)
    for key, option, axis in (("roi_heads.box_predictor.cls_score.weight", "num_classes", 0),
                              ("roi_heads.keypoint_predictor.kps_score_lowres.weight", "num_keypoints", 1)):
        if key in state and option not in kwargs:
            kwargs[option] = int(state[key].shape[axis])
    model = getattr(detection, arch)(weights=None, weights_backbone=None, **kwargs)
    parts = state_dict_mismatch(model.state_dict(), state)
    if parts:
        raise CheckpointError(f"{weights}: does not fit {arch}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


def detect(model: Any, image_root: str | Path, relpaths: Sequence[str], *, batch_size: int = 4,
           device: str = "cpu") -> dict[str, dict[str, Any]]:
    """Run a detection model over images (``image_root / relpath``) and return {relpath: its output dict},
    on the CPU: the input of :func:`face_detections`, :func:`person_detections` or :func:`save_outputs`.

    Images go in as torchvision detection models take them: RGB float in [0, 1], at their stored size
    (the models resize and normalise inside), so boxes come back in the image's pixels.
    """
    import torch

    from reprolib.data.views import open_rgb

    image_root = Path(image_root)
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(relpaths), batch_size):
        batch = list(relpaths[start:start + batch_size])
        images = [torch.from_numpy(np.asarray(open_rgb(image_root / rel), dtype=np.float32) / 255.0)
                  .permute(2, 0, 1).to(device) for rel in batch]
        with torch.inference_mode():
            results = model(images)
        for rel, result in zip(batch, results):
            out[rel] = {k: v.detach().cpu() for k, v in result.items()}
    return out


# ---------------------------------------------------------------------------------------------------
# Command line: reprolib prepare-inputs face-boxes | pose | depth
# ---------------------------------------------------------------------------------------------------

PROG = "reprolib prepare-inputs"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())


def _cmd_face_boxes(args: argparse.Namespace) -> str:
    detections = face_detections(read_outputs(args.detections), label=args.label, source=str(args.detections))
    counts = write_face_boxes(args.root, args.split, detections, format=args.format, min_score=args.min_score,
                              source=str(args.detections))
    return f"wrote {Path(args.root) / 'face_boxes' / f'{args.split}.{args.format}'}: {_counts(counts)}"


def _cmd_pose(args: argparse.Namespace) -> str:
    detections = person_detections(read_outputs(args.detections), source=str(args.detections))
    counts = write_pose(args.root, args.split, detections, csv=args.csv, layout=args.layout, min_iou=args.min_iou,
                        min_score=args.min_score, source=str(args.detections))
    return f"wrote {Path(args.root) / 'pose' / f'{args.split}.npy'} ({args.layout} joints): {_counts(counts)}"


def _cmd_depth(args: argparse.Namespace) -> str:
    counts = write_depth(args.root, read_depth_maps(args.maps), splits=args.splits, kind=args.kind,
                         allow_missing=args.allow_missing, source=str(args.maps))
    return f"wrote depth maps under {Path(args.root) / 'depth'}: {_counts(counts)}"


def _run(args: argparse.Namespace) -> int:
    """Run the chosen mode; bad input is a message naming the file and exit status 2."""
    try:
        print(f"{PROG} {args.mode}: {args.prepare(args)}")
    except (ValueError, OSError) as exc:  # DataFormatError is a ValueError
        print(f"{PROG} {args.mode}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _mode(modes: argparse._SubParsersAction, name: str, prepare: Any, what: str, how: str,
          root: str) -> argparse.ArgumentParser:
    """One mode of ``prepare-inputs``: its parser with ``--root``, run by :func:`_run`."""
    p = modes.add_parser(name, help=what, description=f"{what}. {how}")
    p.add_argument("--root", required=True, help=root)
    p.set_defaults(func=_run, prepare=prepare)
    return p


def _detections_options(p: argparse.ArgumentParser, shape: str, below: str) -> None:
    p.add_argument("--split", required=True, help="train, test, ...")
    p.add_argument("--detections", required=True, type=Path,
                   help=f"JSON {shape} (reprolib.data.prepare.save_outputs writes it)")
    p.add_argument("--min-score", type=float, default=-math.inf, help=below)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``prepare-inputs`` with its modes ``face-boxes``, ``pose`` and ``depth``."""
    modes = subparsers.add_parser(
        "prepare-inputs", help="write the face boxes (CAER-S), pose keypoints and depth maps (EMOTIC) the real "
        "datasets do not ship, from detector outputs you saved",
        description="Turn saved detector outputs into the files the loaders read (see reprolib.data.prepare); "
        "exit status 2 for bad input, with a message naming the file.",
    ).add_subparsers(dest="mode", metavar="MODE", required=True)

    f = _mode(modes, "face-boxes", _cmd_face_boxes, "<root>/face_boxes/<split>.txt|.json from face detections",
              "Each frame gets its highest-scoring face; a frame without one gets the all-zero box (the loader "
              "then uses the whole frame).", "the CAER-S folder holding <split>/<Class>/<file>")
    _detections_options(f, '{"Class/file.png": {"boxes": [[x1, y1, x2, y2], ...], "scores": [...]}}',
                        "faces below it count as no face")
    f.add_argument("--format", choices=FACE_FORMATS, default="txt")
    f.add_argument("--label", type=int, help="keep only detections of this class label (e.g. 1 = face)")

    q = _mode(modes, "pose", _cmd_pose, "<root>/pose/<split>.npy from Keypoint R-CNN outputs",
              "Each annotated person gets the detected skeleton of highest IoU with their body box (one "
              "skeleton per person); unmatched people get confidence 0.", "the EMOTIC folder holding <split>.csv")
    _detections_options(q, '{"Folder/Filename": {"boxes": ..., "scores": ..., "keypoints": [N, 17, 3], '
                        '"keypoints_scores": [N, 17]}}', "drop detected people below it")
    q.add_argument("--csv", type=Path, help="annotation CSV (default <root>/<split>.csv)")
    q.add_argument("--layout", choices=POSE_LAYOUTS, default="emoticon",
                   help="emoticon: the 10 joints EmotiCon reads by default; coco: all 17 (n_joints=17)")
    q.add_argument("--min-iou", type=float, default=MIN_IOU)

    d = _mode(modes, "depth", _cmd_depth, "<root>/depth/<Folder>/<stem>.png from a monocular depth model's maps",
              "Each map is stretched to its own range (nearest white) and resized to the image.",
              "the EMOTIC folder holding the split CSVs")
    d.add_argument("--maps", required=True, type=Path,
                   help="a folder of <Folder>/<stem>.npy (H x W each) or one .npz keyed 'Folder/Filename'")
    d.add_argument("--splits", nargs="+", help="whose images need maps (default: every split CSV there)")
    d.add_argument("--kind", choices=DEPTH_KINDS, default="disparity",
                   help="disparity: large = near (MiDaS, Depth Anything); depth: large = far (metric models)")
    d.add_argument("--allow-missing", action="store_true", help="write what is there even if images lack maps")
