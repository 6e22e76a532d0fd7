"""Confounded synthetic datasets written in the real datasets' on-disk formats.

The real datasets cannot be shipped, so these generators draw small pictures whose causal structure
we control and write them exactly as CAER-S and EMOTIC lay out their files. The loaders in
:mod:`reprolib.data.caers` and :mod:`reprolib.data.emotic` then read synthetic and real data alike.

Causal structure of every sample (one subject, one scene, a few bystanders):

* ``emotion`` is drawn first (balanced for CAER-S);
* ``scene``: with probability ``bias`` one of the scene types that favour this emotion, otherwise any
  scene uniformly. ``bias=0`` makes scene and emotion independent. Splits ``train``, ``val`` and
  ``test`` use ``bias``; ``test_ood`` uses 0, the de-confounded view;
* the subject's drawn expression is the emotion's, except with probability ``expression_noise``
  where it is a random one (the face is an imperfect witness, so a model trained on biased data has
  a reason to lean on the scene);
* each bystander shares the subject's emotion with probability ``prior_strength`` and is random
  otherwise, in every split: a helpful context cue that survives de-confounding.

What a real dataset would not record (scene id, drawn expression, bystander emotions, the knobs) goes
to a sidecar ``ground_truth.json`` for analysis only; loaders never read it.

Each dataset is written once into ``<root>/<name>-<hash of arguments>/`` (built in a temporary folder
and renamed, so an interrupted run leaves nothing half-written) and reused on later calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw

from reprolib import atomic, distributed
from reprolib.data import draw as D
from reprolib.data.caers import CLASSES as CAERS_FORMAT_CLASSES
from reprolib.data.emotic import CATEGORIES as EMOTIC_FORMAT_CATEGORIES
from reprolib.data.emotic import HEADER as EMOTIC_FORMAT_HEADER

SPLITS = ("train", "val", "test", "test_ood")
CAER_CLASSES = CAERS_FORMAT_CLASSES  # the loader owns the format facts
GENERATOR_VERSION = 3  # bump on any change to what is drawn or written: it keys the data cache
TRUTH_FILE = "ground_truth.json"
_COMPLETE_MARKER = ".complete"

# How each CAER-S emotion shows on a face (mouth, brows, eyes).
CAER_EXPRESSIONS = {
    "Anger": D.Expression("flat", "furrowed", "narrow"),
    "Disgust": D.Expression("wavy", "furrowed", "normal"),
    "Fear": D.Expression("open", "sad", "wide"),
    "Happy": D.Expression("smile", "neutral", "normal"),
    "Neutral": D.Expression("flat", "neutral", "normal"),
    "Sad": D.Expression("frown", "sad", "normal"),
    "Surprise": D.Expression("open", "raised", "wide"),
}

CAER_DEFAULTS: dict[str, Any] = {
    "sizes": {"train": 1400, "val": 350, "test": 700, "test_ood": 700},
    "image_size": 64,
    "n_scenes": 7,
    "bias": 0.9,  # above the face's reliability (1 - expression_noise): the scene is the better cue in training
    "prior_strength": 0.4,
    "expression_noise": 0.2,
    "max_bystanders": 2,
    "box_quirk_rate": 0.03,
    "supersample": 2,
}


def knobs_with_defaults(defaults: dict[str, Any], knobs: dict[str, Any]) -> dict[str, Any]:
    """Merge user knobs over the defaults, refusing unknown names (a typo must not pass silently)."""
    unknown = sorted(set(knobs) - set(defaults))
    if unknown:
        raise TypeError(f"unknown knob(s) {unknown}; known knobs: {sorted(defaults)}")
    merged = {**defaults, **knobs}
    sizes = merged.get("sizes")
    if isinstance(sizes, dict):
        bad = sorted(set(sizes) - set(SPLITS))
        if bad:
            raise ValueError(f"sizes names unknown split(s) {bad}; splits are {SPLITS}")
        merged["sizes"] = {s: int(sizes.get(s, defaults["sizes"][s])) for s in SPLITS}
    if not 0.0 <= float(merged.get("bias", 0.0)) <= 1.0:
        raise ValueError(f"bias must lie in [0, 1], got {merged['bias']}")
    return merged


def dataset_dir(root: str | os.PathLike, name: str, seed: int, knobs: dict[str, Any]) -> Path:
    """The cache folder for one set of arguments: the name plus a short hash of everything that matters."""
    key = json.dumps({"name": name, "version": GENERATOR_VERSION, "seed": int(seed), "knobs": knobs},
                     sort_keys=True)
    return Path(root) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def build_cached(root: str | os.PathLike, name: str, seed: int, knobs: dict[str, Any],
                 writer: Callable[[Path, np.random.Generator], dict[str, Any]]) -> Path:
    """Return the cached dataset folder, writing it first (atomically) when it is missing.

    ``writer(tmp_dir, rng)`` writes every file and returns the ground-truth dictionary, which is saved
    as the sidecar together with the arguments. Processes that build the same folder at once all
    return the one that landed first; under torchrun rank 0 builds it and the others reuse it.
    """
    with distributed.main_process_first():
        return _build_once(dataset_dir(root, name, seed, knobs), name, seed, knobs, writer)


def _build_once(target: Path, name: str, seed: int, knobs: dict[str, Any], writer) -> Path:
    """Write the dataset into a temporary folder beside ``target`` and rename it into place.

    The temporary folder's name carries this process's host and PID (:mod:`reprolib.atomic`), so the
    leftovers of a killed generation of the same target are removed here, while those of a live
    concurrent generator are left alone."""
    if (target / _COMPLETE_MARKER).exists():
        return target
    with atomic.temp_dir(target) as tmp:
        truth = writer(tmp, np.random.default_rng(seed))
        truth = {"generator": name, "version": GENERATOR_VERSION, "seed": int(seed), "knobs": knobs, **truth}
        (tmp / TRUTH_FILE).write_text(json.dumps(truth, sort_keys=True))
        (tmp / _COMPLETE_MARKER).write_text("complete\n")  # no timestamps: same arguments, same bytes
        if target.exists() and not (target / _COMPLETE_MARKER).exists():  # left incomplete by an older crash
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process renamed its copy into place first: keep that one
            if not (target / _COMPLETE_MARKER).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_truth(dataset_root: str | os.PathLike) -> dict[str, Any]:
    """Read the ground-truth sidecar of a synthetic dataset (analysis only; real data has none)."""
    path = Path(dataset_root) / TRUTH_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no ground-truth sidecar; only synthetic datasets carry one")
    return json.loads(path.read_text())


def favoured_emotion(scene: int, n_classes: int) -> int:
    """The emotion that ``scene`` favours in the biased splits (CAER-S-style data): the shortcut's answer."""
    return int(scene) % n_classes


def sample_scene(rng: np.random.Generator, emotion: int, n_classes: int, n_scenes: int, bias: float) -> int:
    """A scene for this emotion: a favouring scene with probability ``bias``, else any scene.

    Scene ``s`` favours emotion ``s % n_classes``.
    """
    favoured = [s for s in range(n_scenes) if favoured_emotion(s, n_classes) == emotion]
    if favoured and rng.random() < bias:
        return int(rng.choice(favoured))
    return int(rng.integers(n_scenes))


def _random_box(rng: np.random.Generator, size: int, side: float, avoid: list[tuple[float, ...]]) -> tuple[float, ...] | None:
    """A square box of the given side inside the canvas that does not overlap ``avoid`` (None if none fits)."""
    for _ in range(20):
        x = rng.uniform(0, size - side)
        y = rng.uniform(0, size - side)
        box = (x, y, x + side, y + side)
        if all(box[2] <= a[0] or box[0] >= a[2] or box[3] <= a[1] or box[1] >= a[3] for a in avoid):
            return box
    return None


def render_caer_image(rng: np.random.Generator, emotion: int, scene: int, k: dict[str, Any]) -> tuple[Image.Image, list[int], list[int], int]:
    """Draw one CAER-S-style frame; returns the image, face box, bystander emotions and the expression shown."""
    n = len(CAER_CLASSES)
    ss = int(k["supersample"])
    size = int(k["image_size"])
    big = size * ss
    img = Image.new("RGB", (big, big))
    canvas = ImageDraw.Draw(img)
    D.draw_scene(canvas, big, big, scene, int(k["n_scenes"]), rng)

    shown = emotion if rng.random() >= k["expression_noise"] else int(rng.integers(n))
    side = big * rng.uniform(0.36, 0.44)
    cx = rng.uniform(side / 2, big - side / 2)
    cy = rng.uniform(side / 2, big - side / 2)
    face = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)

    bystanders: list[int] = []
    placed = [face]
    for _ in range(int(rng.integers(0, int(k["max_bystanders"]) + 1))):
        box = _random_box(rng, big, big * rng.uniform(0.2, 0.26), placed)
        if box is None:
            continue
        mood = emotion if rng.random() < k["prior_strength"] else int(rng.integers(n))
        D.draw_face(canvas, box, CAER_EXPRESSIONS[CAER_CLASSES[mood]], D.random_skin(rng))
        placed.append(box)
        bystanders.append(mood)
    D.draw_face(canvas, face, CAER_EXPRESSIONS[CAER_CLASSES[shown]], D.random_skin(rng))
    if ss > 1:
        img = img.resize((size, size), Image.LANCZOS)
    # Like a face detector's box, the annotation is the square inside the round face: the crop then
    # shows the face and no background, so a subject-only model cannot read the scene.
    inset = side * 0.16  # > (1 - 1/sqrt(2)) / 2, so no corner of the box reaches past the face
    box = [int(round(v / ss)) for v in (face[0] + inset, face[1] + inset, face[2] - inset, face[3] - inset)]
    box = [max(0, min(size, v)) for v in box]
    return img, box, bystanders, shown


def save_png(img: Image.Image, path: Path) -> None:
    """PNG without metadata or timestamps, so identical pixels give identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=False)


def make_caer_s(root: str | os.PathLike, seed: int = 0, **knobs: Any) -> Path:
    """Write (or reuse) a CAER-S-style dataset under ``root`` and return its folder.

    Layout written, as in CAER-S plus the detector face-box format::

        <dataset>/<split>/<Class>/NNNN.png          split in train, val, test, test_ood
        <dataset>/face_boxes/<split>.txt            lines "relpath,label,x1,y1,x2,y2"
        <dataset>/ground_truth.json                 analysis-only sidecar

    A fraction ``box_quirk_rate`` of the box lines has its corners swapped, as some real annotation
    files do; the loader must normalise them. Knobs (smoke defaults in ``CAER_DEFAULTS``): ``sizes``
    (samples per split), ``image_size``, ``n_scenes``, ``bias``, ``prior_strength``,
    ``expression_noise``, ``max_bystanders``, ``box_quirk_rate``, ``supersample``.
    """
    k = knobs_with_defaults(CAER_DEFAULTS, knobs)
    n = len(CAER_CLASSES)

    def write(out: Path, rng: np.random.Generator) -> dict[str, Any]:
        truth: dict[str, Any] = {"classes": list(CAER_CLASSES), "splits": {}}
        (out / "face_boxes").mkdir()
        for split in SPLITS:
            bias = 0.0 if split == "test_ood" else float(k["bias"])
            count = k["sizes"][split]
            emotions = np.resize(np.arange(n), count)  # balanced classes, as in CAER-S
            rng.shuffle(emotions)
            per_class = [0] * n
            lines, records = [], {}
            for emotion in emotions.tolist():
                scene = sample_scene(rng, emotion, n, int(k["n_scenes"]), bias)
                img, box, bystanders, shown = render_caer_image(rng, emotion, scene, k)
                per_class[emotion] += 1
                rel = f"{split}/{CAER_CLASSES[emotion]}/{per_class[emotion]:04d}.png"
                save_png(img, out / rel)
                if rng.random() < k["box_quirk_rate"]:
                    box = [box[2], box[3], box[0], box[1]]
                lines.append(f"{rel},{emotion},{box[0]},{box[1]},{box[2]},{box[3]}")
                records[rel] = {"scene": scene, "shown": shown, "bystanders": bystanders}
            (out / "face_boxes" / f"{split}.txt").write_text("\n".join(lines) + "\n")
            truth["splits"][split] = {"bias": bias, "samples": records}
        return truth

    return build_cached(root, "caer_s", seed, k, write)


# ---------------------------------------------------------------------------------------------------
# EMOTIC: whole images with several annotated people, written as the Tandon-style CSV annotations.
# ---------------------------------------------------------------------------------------------------

EMOTIC_CATEGORIES = EMOTIC_FORMAT_CATEGORIES  # the loader owns the format facts
EMOTIC_HEADER = EMOTIC_FORMAT_HEADER
EMOTIC_IMAGE_FOLDER = "synth/images"
EMOTIC_POSE_FOLDER = "pose"    # <split>.npy: [rows, joints, (x, y, confidence)], aligned with the CSV rows
EMOTIC_DEPTH_FOLDER = "depth"  # depth/<Folder>/<image stem>.png: 8-bit, bright = near

# How each category shows on a body: (mouth, brows, eyes, arms), a distinct combination per category.
_E = D.Expression
EMOTIC_EXPRESSIONS = {
    "Affection": _E("smile", "neutral", "normal", "out"),
    "Anger": _E("flat", "furrowed", "narrow", "down"),
    "Annoyance": _E("wavy", "furrowed", "normal", "down"),
    "Anticipation": _E("flat", "raised", "wide", "down"),
    "Aversion": _E("wavy", "furrowed", "narrow", "out"),
    "Confidence": _E("grin", "neutral", "narrow", "down"),
    "Disapproval": _E("frown", "furrowed", "normal", "down"),
    "Disconnection": _E("flat", "neutral", "narrow", "down"),
    "Disquietment": _E("wavy", "sad", "normal", "down"),
    "Doubt/Confusion": _E("wavy", "raised", "normal", "down"),
    "Embarrassment": _E("smile", "sad", "narrow", "down"),
    "Engagement": _E("flat", "neutral", "wide", "out"),
    "Esteem": _E("smile", "raised", "normal", "down"),
    "Excitement": _E("grin", "raised", "wide", "up"),
    "Fatigue": _E("flat", "sad", "narrow", "down"),
    "Fear": _E("open", "sad", "wide", "up"),
    "Happiness": _E("grin", "neutral", "normal", "up"),
    "Pain": _E("frown", "sad", "narrow", "out"),
    "Peace": _E("smile", "neutral", "narrow", "down"),
    "Pleasure": _E("grin", "neutral", "narrow", "out"),
    "Sadness": _E("frown", "sad", "normal", "down"),
    "Sensitivity": _E("frown", "raised", "normal", "down"),
    "Suffering": _E("open", "furrowed", "narrow", "down"),
    "Surprise": _E("open", "raised", "wide", "down"),
    "Sympathy": _E("frown", "sad", "wide", "out"),
    "Yearning": _E("flat", "raised", "normal", "up"),
}
del _E

# Categories that tend to be annotated together with each primary one (the multi-label structure).
EMOTIC_COMPANIONS = {
    "Affection": ("Happiness", "Pleasure"), "Anger": ("Annoyance", "Disapproval"),
    "Annoyance": ("Anger", "Disapproval"), "Anticipation": ("Engagement", "Excitement"),
    "Aversion": ("Disapproval", "Annoyance"), "Confidence": ("Engagement", "Esteem"),
    "Disapproval": ("Annoyance", "Aversion"), "Disconnection": ("Fatigue", "Doubt/Confusion"),
    "Disquietment": ("Fear", "Doubt/Confusion"), "Doubt/Confusion": ("Disquietment", "Engagement"),
    "Embarrassment": ("Disquietment", "Sensitivity"), "Engagement": ("Anticipation", "Confidence"),
    "Esteem": ("Confidence", "Affection"), "Excitement": ("Happiness", "Anticipation"),
    "Fatigue": ("Disconnection", "Suffering"), "Fear": ("Disquietment", "Surprise"),
    "Happiness": ("Pleasure", "Excitement"), "Pain": ("Suffering", "Sadness"),
    "Peace": ("Pleasure", "Happiness"), "Pleasure": ("Happiness", "Peace"),
    "Sadness": ("Suffering", "Yearning"), "Sensitivity": ("Sympathy", "Sadness"),
    "Suffering": ("Pain", "Sadness"), "Surprise": ("Excitement", "Fear"),
    "Sympathy": ("Affection", "Sensitivity"), "Yearning": ("Sadness", "Anticipation"),
}

# Typical (valence, arousal, dominance) of each category on EMOTIC's 1-10 scales.
EMOTIC_VAD = {
    "Affection": (8, 5, 6), "Anger": (2, 8, 7), "Annoyance": (3, 6, 6), "Anticipation": (6, 6, 6),
    "Aversion": (3, 5, 5), "Confidence": (7, 6, 8), "Disapproval": (3, 5, 6), "Disconnection": (5, 3, 5),
    "Disquietment": (4, 6, 4), "Doubt/Confusion": (4, 5, 4), "Embarrassment": (3, 6, 3),
    "Engagement": (6, 6, 6), "Esteem": (7, 5, 7), "Excitement": (8, 8, 7), "Fatigue": (4, 2, 4),
    "Fear": (2, 8, 2), "Happiness": (9, 7, 7), "Pain": (2, 6, 3), "Peace": (8, 2, 6),
    "Pleasure": (8, 5, 6), "Sadness": (2, 3, 3), "Sensitivity": (4, 4, 4), "Suffering": (1, 6, 2),
    "Surprise": (6, 8, 5), "Sympathy": (6, 4, 5), "Yearning": (5, 4, 4),
}

# Relative frequency of each primary category: mildly imbalanced (about 5:1), as EMOTIC is (much more).
EMOTIC_WEIGHTS = {
    "Engagement": 3.0, "Happiness": 2.4, "Anticipation": 2.2, "Confidence": 2.0, "Pleasure": 1.6,
    "Peace": 1.5, "Excitement": 1.4, "Affection": 1.2, "Disconnection": 1.2, "Esteem": 1.0,
    "Sympathy": 1.0, "Doubt/Confusion": 1.0, "Yearning": 0.8, "Fatigue": 0.8, "Disquietment": 0.8,
    "Surprise": 0.7, "Sadness": 0.7, "Annoyance": 0.7, "Sensitivity": 0.6, "Disapproval": 0.6,
    "Suffering": 0.6, "Fear": 0.6, "Aversion": 0.6, "Anger": 0.6, "Pain": 0.6, "Embarrassment": 0.6,
}

EMOTIC_GENDERS = ("Male", "Female")
EMOTIC_AGES = ("Adult", "Teenager", "Kid")
_AGE_P = (0.7, 0.15, 0.15)
_AGE_HEIGHT = {"Adult": (0.78, 0.9), "Teenager": (0.7, 0.8), "Kid": (0.6, 0.7)}  # of the image height

EMOTIC_DEFAULTS: dict[str, Any] = {
    "sizes": {"train": 900, "val": 250, "test": 500, "test_ood": 500},  # images (rows = people)
    "image_size": (96, 64),  # (width, height)
    "n_scenes": 8,
    "bias": 0.8,
    "prior_strength": 0.4,
    "expression_noise": 0.2,
    "companion_rate": 0.5,
    "max_people": 3,
    "supersample": 2,
}


def emotic_category_probs() -> np.ndarray:
    """The fixed, mildly imbalanced distribution of primary categories, in category order."""
    w = np.array([EMOTIC_WEIGHTS[c] for c in EMOTIC_CATEGORIES], dtype=float)
    return w / w.sum()


def emotic_favoured_scenes(category: int, n_scenes: int) -> list[int]:
    """Scenes that favour ``category``: scene ``s`` favours every ``c`` with ``s % m == c % m``.

    ``m = min(n_scenes, 26)``, so with fewer scenes than categories each scene favours a fixed group
    of categories (8 scenes: 3 or 4 each), and every category has at least one favoured scene.
    """
    m = min(n_scenes, len(EMOTIC_CATEGORIES))
    return [s for s in range(n_scenes) if s % m == category % m]


def _emotic_knobs(knobs: dict[str, Any]) -> dict[str, Any]:
    k = knobs_with_defaults(EMOTIC_DEFAULTS, knobs)
    size = k["image_size"]
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    if len(size) != 2 or min(int(v) for v in size) < 16:
        raise ValueError(f"image_size must be (width, height) of at least 16 pixels each, got {k['image_size']}")
    k["image_size"] = [int(size[0]), int(size[1])]
    if int(k["max_people"]) < 1:
        raise ValueError(f"max_people must be at least 1, got {k['max_people']}")
    if int(k["n_scenes"]) < 1 or int(k["supersample"]) < 1:
        raise ValueError("n_scenes and supersample must be at least 1")
    for name in ("prior_strength", "expression_noise", "companion_rate"):
        if not 0.0 <= float(k[name]) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {k[name]}")
    return k


def emotic_labels(rng: np.random.Generator, primary: int, companion_rate: float) -> list[int]:
    """The primary category plus, with probability ``companion_rate``, one or two companions."""
    labels = {primary}
    if rng.random() < companion_rate:
        pair = EMOTIC_COMPANIONS[EMOTIC_CATEGORIES[primary]]
        chosen = pair if rng.random() < 0.4 else (pair[int(rng.integers(2))],)
        labels.update(EMOTIC_CATEGORIES.index(c) for c in chosen)
    return sorted(labels)


def emotic_vad(rng: np.random.Generator, primary: int) -> list[int]:
    """The category's (V, A, D) plus integer noise in {-1, 0, 1}, clipped to EMOTIC's 1-10 scale."""
    base = np.array(EMOTIC_VAD[EMOTIC_CATEGORIES[primary]])
    return [int(v) for v in np.clip(base + rng.integers(-1, 2, size=3), 1, 10)]


@dataclass
class EmoticPicture:
    """One rendered EMOTIC-style image and what the renderer knows about it (final pixel units)."""

    image: Image.Image
    boxes: list[list[int]]             # body box [x1, y1, x2, y2] per person
    shown: list[int]                   # category each person's expression shows
    ages: list[str]
    keypoints: list[list[list[float]]]  # per person, per joint of draw.JOINTS: [x, y]
    horizon: float                     # y of the horizon


def render_emotic_image(rng: np.random.Generator, primaries: list[int], scene: int, k: dict[str, Any]
                        ) -> EmoticPicture:
    """Draw one EMOTIC-style image with one standing person per entry of ``primaries``.

    People stand side by side in random, non-overlapping slots, 60-90 % of the image height tall
    (by age).
    """
    n_cat = len(EMOTIC_CATEGORIES)
    ss = int(k["supersample"])
    width, height = k["image_size"]
    bw, bh = width * ss, height * ss
    img = Image.new("RGB", (bw, bh))
    canvas = ImageDraw.Draw(img)
    horizon = D.draw_scene(canvas, bw, bh, scene, int(k["n_scenes"]), rng)

    n = len(primaries)
    slot_w = bw / n
    slots = rng.permutation(n)
    boxes, shown, ages, keypoints = [], [], [], []
    for j, primary in enumerate(primaries):
        age = EMOTIC_AGES[int(rng.choice(len(EMOTIC_AGES), p=_AGE_P))]
        h = bh * rng.uniform(*_AGE_HEIGHT[age])
        w = min(h * 0.5, slot_w * 0.96)
        x1 = slots[j] * slot_w + rng.uniform(0, slot_w - w)
        y2 = bh if rng.random() < 0.25 else rng.uniform(max(h, 0.9 * bh), bh)  # some touch the border
        y1 = y2 - h
        face = primary if rng.random() >= k["expression_noise"] else int(rng.integers(n_cat))
        joints = D.draw_body(canvas, (x1, y1, x1 + w, y2), EMOTIC_EXPRESSIONS[EMOTIC_CATEGORIES[face]],
                             D.random_skin(rng), D.random_colour(rng))
        keypoints.append([[round(x / ss, 2), round(y / ss, 2)] for x, y in joints])
        box = [int(np.floor(x1 / ss)), int(np.floor(y1 / ss)), int(np.ceil((x1 + w) / ss)), int(np.ceil(y2 / ss))]
        boxes.append([max(0, min(lim, v)) for v, lim in zip(box, (width, height, width, height))])
        shown.append(face)
        ages.append(age)
    if ss > 1:
        img = img.resize((width, height), Image.LANCZOS)
    return EmoticPicture(img, boxes, shown, ages, keypoints, horizon / ss)


def depth_map(width: int, height: int, horizon: float, boxes: list[list[int]]) -> np.ndarray:
    """An 8-bit depth map as a monocular depth estimator would give it (bright = near).

    Sky is far (0); the ground comes nearer linearly from the horizon to the bottom edge; each person
    is a flat card standing where their feet touch the ground, nearer people drawn over farther ones.
    """
    rows = np.arange(height, dtype=np.float64)[:, None]
    ground = 40 + 215 * (rows - horizon) / max(height - horizon, 1.0)
    depth = np.broadcast_to(np.where(rows < horizon, 0.0, ground), (height, width)).copy()
    for x1, y1, x2, y2 in sorted(boxes, key=lambda b: b[3]):
        depth[y1:y2, x1:x2] = depth[min(y2, height) - 1, 0]
    return np.clip(np.round(depth), 0, 255).astype(np.uint8)


def save_jpeg(img: Image.Image, path: Path) -> None:
    """JPEG at quality 95 with full-resolution chroma and no metadata: same pixels, same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=95, subsampling=0, optimize=False)


def write_emotic_csv(path: Path, rows: list[list[Any]]) -> None:
    """Write rows in the Tandon-style 9-column layout, every list cell a quoted Python literal.

    List cells are always quoted (even ``"['Peace']"``, which a minimal-quoting writer would leave
    bare); the other cells hold no commas or quotes and stay bare. Lines end with ``\\n``.
    """
    def cell(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return '"' + str(list(value)).replace('"', '""') + '"'
        text = str(value)
        if any(ch in text for ch in ',"\n'):
            raise ValueError(f"{path}: cell {text!r} would need quoting")
        return text

    lines = [",".join(EMOTIC_HEADER)] + [",".join(cell(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_emotic(root: str | os.PathLike, seed: int = 0, **knobs: Any) -> Path:
    """Write (or reuse) an EMOTIC-style dataset under ``root`` and return its folder.

    Layout written, as the widely used Tandon-A preprocessing of EMOTIC lays out its annotations::

        <dataset>/synth/images/NNNNNN.jpg       JPEG, quality 95, numbered across all splits
        <dataset>/<split>.csv                   split in train, val, test, test_ood
        <dataset>/pose/<split>.npy              body keypoints per CSV row (EmotiCon's pose stream)
        <dataset>/depth/synth/images/NNNNNN.png depth map per image (EmotiCon's socio-dynamic stream)
        <dataset>/ground_truth.json             analysis-only sidecar

    Each CSV has the header ``Index,Folder,Filename,Image Size,BBox,Categorical_Labels,
    Continuous_Labels,Gender,Age`` and one row per person (an image with three people gives three
    rows), e.g. ``0,synth/images,000001.jpg,"[96, 64]","[10, 5, 40, 60]","['Affection',
    'Happiness']","[7, 4, 6]",Female,Adult``. Image Size is [W, H], BBox [x1, y1, x2, y2] in pixels,
    continuous labels [V, A, D] integers on 1-10.

    Per image: 1..``max_people`` people. The first person's primary category comes from a fixed,
    mildly imbalanced distribution (every category at least once per split when the split has 26 or
    more images); the scene favours it with probability ``bias`` (0 for ``test_ood``); every other
    person shares it with probability ``prior_strength``, else draws their own. Each person's labels
    are their primary plus, with probability ``companion_rate``, one or two companion categories; the
    body shows the primary's expression except with probability ``expression_noise``. VAD is the
    primary's typical value plus integer noise; gender and age are independent of everything.

    Knobs (smoke defaults in ``EMOTIC_DEFAULTS``): ``sizes`` (images per split), ``image_size``
    ((width, height) or an int), ``n_scenes``, ``bias``, ``prior_strength``, ``expression_noise``,
    ``companion_rate``, ``max_people``, ``supersample``.

    The sidecar holds, per split, ``bias`` and a list ``rows`` aligned with the CSV's Index:
    ``{"image", "person", "scene", "primary", "shown"}`` (``person`` 0 is the one the scene was
    drawn for).
    """
    k = _emotic_knobs(knobs)
    n_cat = len(EMOTIC_CATEGORIES)
    probs = emotic_category_probs()
    width, height = k["image_size"]

    def write(out: Path, rng: np.random.Generator) -> dict[str, Any]:
        truth: dict[str, Any] = {"categories": list(EMOTIC_CATEGORIES), "splits": {}}
        image_no = 0
        for split in SPLITS:
            bias = 0.0 if split == "test_ood" else float(k["bias"])
            count = k["sizes"][split]
            guaranteed = np.arange(min(count, n_cat))  # every category leads at least one image
            firsts = np.concatenate([guaranteed, rng.choice(n_cat, size=count - len(guaranteed), p=probs)])
            rng.shuffle(firsts)
            rows: list[list[Any]] = []
            meta: list[dict[str, Any]] = []
            poses: list[list[list[float]]] = []
            for first in firsts.tolist():
                n_people = int(rng.integers(1, int(k["max_people"]) + 1))
                m = min(int(k["n_scenes"]), n_cat)
                scene = sample_scene(rng, first % m, m, int(k["n_scenes"]), bias)
                primaries = [first] + [first if rng.random() < k["prior_strength"] else int(rng.choice(n_cat, p=probs))
                                       for _ in range(n_people - 1)]
                pic = render_emotic_image(rng, primaries, scene, k)
                image_no += 1
                name = f"{image_no:06d}.jpg"
                save_jpeg(pic.image, out / EMOTIC_IMAGE_FOLDER / name)
                save_png(Image.fromarray(depth_map(width, height, pic.horizon, pic.boxes)),
                         out / EMOTIC_DEPTH_FOLDER / EMOTIC_IMAGE_FOLDER / f"{image_no:06d}.png")
                poses.extend([[x, y, 1.0] for x, y in joints] for joints in pic.keypoints)
                for person, (primary, box, face, age) in enumerate(zip(primaries, pic.boxes, pic.shown, pic.ages)):
                    labels = [EMOTIC_CATEGORIES[c] for c in emotic_labels(rng, primary, k["companion_rate"])]
                    gender = EMOTIC_GENDERS[int(rng.integers(2))]
                    rows.append([len(rows), EMOTIC_IMAGE_FOLDER, name, [width, height], box,
                                 labels, emotic_vad(rng, primary), gender, age])
                    meta.append({"image": f"{EMOTIC_IMAGE_FOLDER}/{name}", "person": person, "scene": scene,
                                 "primary": primary, "shown": face})
            write_emotic_csv(out / f"{split}.csv", rows)
            (out / EMOTIC_POSE_FOLDER).mkdir(exist_ok=True)
            np.save(out / EMOTIC_POSE_FOLDER / f"{split}.npy", np.asarray(poses, dtype=np.float32))
            truth["splits"][split] = {"bias": bias, "images": count, "rows": meta}
        return truth

    return build_cached(root, "emotic", seed, k, write)


# ---------------------------------------------------------------------------------------------------
# MulT-style IEMOCAP / CMU-MOSEI pickles: an emotion seen through three modalities of different
# reliability, and one dominant modality that carries a training-only shortcut.
# ---------------------------------------------------------------------------------------------------

MULT_FORMAT_VERSION = 1  # bump on any change to what make_mult writes: it keys the pickle cache
MULT_MODALITIES = ("text", "audio", "vision")
MULT_FILE_SPLITS = ("train", "valid", "test")  # the split names inside a MulT pickle

MULT_DEFAULTS: dict[str, Any] = {
    "sizes": {"train": 600, "valid": 150, "test": 300},
    "aligned": True,
    "lengths": None,  # None: 20 steps each when aligned; text 20, audio 50, vision 50 when not
    "dims": {"text": 32, "audio": 74, "vision": 35},  # real text is GloVe 300; 32 keeps smoke runs fast
    "dominant": "text",
    "bias": 0.9,
    "test_bias": 0.0,
    "shortcut_strength": 1.0,
    "expression_noise": {"text": 0.2, "audio": 0.4, "vision": 0.6},
    "signal": 1.0,
    "feature_noise": 1.0,
    "left_pad": 0.0,
    "audio_nonfinite": 0,
}
MULT_IEMOCAP_DEFAULTS: dict[str, Any] = {
    # share of Neutral, Happy, Sad, Angry; about the real IEMOCAP training split (954/338/690/735 of 2717)
    "emotion_probs": [0.35, 0.125, 0.255, 0.27],
}
MULT_MOSEI_DEFAULTS: dict[str, Any] = {
    "sentiment_mean": 0.3,  # real MOSEI leans positive
    "sentiment_std": 1.2,
}
_MULT_UNALIGNED_LENGTHS = {"text": 20, "audio": 50, "vision": 50}
_MULT_ALIGNED_LENGTH = 20


def _mult_knobs(dataset: str, knobs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Canonical dataset name and the checked, JSON-plain knobs of :func:`make_mult`."""
    from reprolib.data.mult import canonical_dataset

    name = canonical_dataset(dataset)
    if name not in ("iemocap", "mosei"):
        raise ValueError(f"make_mult writes 'iemocap' or 'mosei' pickles, not {dataset!r}")
    extra = MULT_IEMOCAP_DEFAULTS if name == "iemocap" else MULT_MOSEI_DEFAULTS
    defaults = {key: v for key, v in {**MULT_DEFAULTS, **extra}.items() if key != "sizes"}
    knobs = dict(knobs)
    sizes_in = knobs.pop("sizes", None) or {}
    k = knobs_with_defaults(defaults, knobs)  # refuses unknown knobs, checks bias in [0, 1]

    sizes = dict(MULT_DEFAULTS["sizes"])
    for split, count in dict(sizes_in).items():
        split = "valid" if split == "val" else split
        if split not in sizes:
            raise ValueError(f"sizes names unknown split {split!r}; MulT splits are {MULT_FILE_SPLITS} (or 'val')")
        if int(count) < 1:
            raise ValueError(f"sizes[{split!r}] must be at least 1, got {count}")
        sizes[split] = int(count)
    k["sizes"] = sizes

    k["aligned"] = bool(k["aligned"])
    lengths = k["lengths"]
    if lengths is None:
        lengths = ({m: _MULT_ALIGNED_LENGTH for m in MULT_MODALITIES} if k["aligned"]
                   else dict(_MULT_UNALIGNED_LENGTHS))
    elif isinstance(lengths, (int, np.integer)):
        lengths = {m: int(lengths) for m in MULT_MODALITIES}
    else:
        unknown = sorted(set(lengths) - set(MULT_MODALITIES))
        if unknown:
            raise ValueError(f"lengths names unknown modality {unknown}; modalities are {MULT_MODALITIES}")
        base = _MULT_ALIGNED_LENGTH if k["aligned"] else None
        lengths = {m: int(lengths.get(m, base if base is not None else _MULT_UNALIGNED_LENGTHS[m]))
                   for m in MULT_MODALITIES}
    if min(lengths.values()) < 1:
        raise ValueError(f"lengths must be at least 1 step, got {lengths}")
    if k["aligned"] != (len(set(lengths.values())) == 1):
        raise ValueError(f"aligned={k['aligned']} but lengths {lengths}: aligned data has one length for all "
                         "three modalities, unaligned data different ones")
    k["lengths"] = lengths

    dims = k["dims"]
    unknown = sorted(set(dims) - set(MULT_MODALITIES))
    if unknown:
        raise ValueError(f"dims names unknown modality {unknown}; modalities are {MULT_MODALITIES}")
    k["dims"] = {m: int(dims.get(m, MULT_DEFAULTS["dims"][m])) for m in MULT_MODALITIES}
    if k["dominant"] not in MULT_MODALITIES:
        raise ValueError(f"dominant must be one of {MULT_MODALITIES}, got {k['dominant']!r}")
    n_short = 4 if name == "iemocap" else 1
    for m, d in k["dims"].items():
        need = 1 + (n_short if m == k["dominant"] else 0)
        if d < need:
            raise ValueError(f"dims[{m!r}] = {d} is too small; it needs at least {need} feature(s)")

    noise = k["expression_noise"]
    if isinstance(noise, (int, float)):
        noise = {m: float(noise) for m in MULT_MODALITIES}
    k["expression_noise"] = {m: float(noise.get(m, MULT_DEFAULTS["expression_noise"][m])) for m in MULT_MODALITIES}
    for m, p in k["expression_noise"].items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"expression_noise[{m!r}] must lie in [0, 1], got {p}")
    for key in ("test_bias", "left_pad"):
        if not 0.0 <= float(k[key]) <= 1.0:
            raise ValueError(f"{key} must lie in [0, 1], got {k[key]}")
    for key in ("bias", "test_bias", "shortcut_strength", "signal", "feature_noise", "left_pad"):
        k[key] = float(k[key])
    if k["feature_noise"] < 0:
        raise ValueError(f"feature_noise must be >= 0, got {k['feature_noise']}")
    k["audio_nonfinite"] = int(k["audio_nonfinite"])
    if k["audio_nonfinite"] < 0:
        raise ValueError(f"audio_nonfinite must be >= 0, got {k['audio_nonfinite']}")
    if name == "iemocap":
        probs = np.asarray(k["emotion_probs"], dtype=float)
        if probs.shape != (4,) or np.any(probs < 0) or probs.sum() <= 0:
            raise ValueError(f"emotion_probs must be 4 non-negative weights (Neutral, Happy, Sad, Angry), "
                             f"got {k['emotion_probs']}")
        k["emotion_probs"] = [float(p) for p in probs / probs.sum()]
    else:
        k["sentiment_mean"] = float(k["sentiment_mean"])
        k["sentiment_std"] = float(k["sentiment_std"])
        if k["sentiment_std"] <= 0:
            raise ValueError(f"sentiment_std must be > 0, got {k['sentiment_std']}")
    return name, k


def mult_shortcut_columns(dataset: str, dims: int) -> list[int]:
    """Feature columns of the dominant modality that carry the shortcut (for analysis and tests).

    IEMOCAP: the last 4 columns, one per emotion (Neutral, Happy, Sad, Angry); MOSEI: the last column.
    ``dims`` is the dominant modality's feature width.
    """
    n_short = 4 if dataset == "iemocap" else 1
    return list(range(dims - n_short, dims))


def generate_mult(dataset: str = "iemocap", seed: int = 0, **knobs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arrays :func:`make_mult` writes, plus the ground truth a real file lacks, in memory.

    Returns ``(data, truth)``: ``data`` in the MulT pickle layout (see :func:`make_mult`); ``truth``
    holds the resolved knobs, ``shortcut_columns`` and per split ``y`` (IEMOCAP: emotion index; MOSEI:
    sentiment), ``expressed`` (per modality: what that modality shows), ``shortcut`` (IEMOCAP: the
    emotion index the shortcut points at; MOSEI: the shortcut value) and ``pad`` (left padding per
    modality). Regenerate it with the same seed and knobs for analysis; it is never written to disk.
    """
    name, k = _mult_knobs(dataset, knobs)
    rng = np.random.default_rng(seed)
    n_comp = 4 if name == "iemocap" else 1  # signal components: one per emotion, or one sentiment axis
    dominant = k["dominant"]
    short_cols = mult_shortcut_columns(name, k["dims"][dominant])

    # Fixed structure, shared by all splits: per modality and component a direction over the signal
    # columns and a temporal pattern 1 + 0.8 cos(2 pi (k + 1) tau + phase) over normalised time tau
    # (mean about 1, so a time average still sees the signal; the rhythm differs per emotion).
    structure = {}
    for m in MULT_MODALITIES:
        d_sig = k["dims"][m] - (len(short_cols) if m == dominant else 0)
        u = rng.normal(size=(n_comp, d_sig))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        phase = rng.uniform(0.0, 2 * np.pi, size=n_comp)
        t = k["lengths"][m]
        tau = (np.arange(t) + 0.5) / t
        pattern = 1.0 + 0.8 * np.cos(2 * np.pi * (np.arange(n_comp)[:, None] + 1) * tau[None, :] + phase[:, None])
        structure[m] = (u, pattern)

    probs = np.asarray(k.get("emotion_probs", [1.0]))
    nonfinite_rng = np.random.default_rng([int(seed), 1])  # separate stream: toggling it changes nothing else
    data: dict[str, Any] = {}
    truth: dict[str, Any] = {"dataset": name, "seed": int(seed), "knobs": k, "shortcut_columns": short_cols,
                             "splits": {}}
    for split in MULT_FILE_SPLITS:
        n = k["sizes"][split]
        bias = k["test_bias"] if split == "test" else k["bias"]
        if name == "iemocap":
            y = rng.choice(4, size=n, p=probs)

            def redraw(size: int) -> np.ndarray:
                return rng.choice(4, size=size, p=probs)
        else:
            mean, std = k["sentiment_mean"], k["sentiment_std"]
            latent = rng.normal(mean, std, size=n)
            y = np.clip(np.round(3 * latent) / 3, -3, 3)

            def redraw(size: int) -> np.ndarray:
                return np.clip(np.round(3 * rng.normal(mean, std, size=size)) / 3, -3, 3)

        split_data: dict[str, Any] = {}
        expressed, pads = {}, {}
        for m in MULT_MODALITIES:
            noisy = rng.random(n) < k["expression_noise"][m]
            shown = np.where(noisy, redraw(n), y)
            expressed[m] = shown
            u, pattern = structure[m]
            t, d = k["lengths"][m], k["dims"][m]
            if name == "iemocap":
                comp, amp = shown.astype(np.int64), np.ones(n)
            else:
                comp, amp = np.zeros(n, dtype=np.int64), shown / 1.5  # sentiment / 1.5: about unit scale
            x = k["feature_noise"] * rng.normal(size=(n, t, d))
            x[:, :, :u.shape[1]] += k["signal"] * amp[:, None, None] * pattern[comp][:, :, None] * u[comp][:, None, :]
            if m == dominant:
                if name == "iemocap":
                    target = np.where(rng.random(n) < bias, y, redraw(n))
                    x[:, :, short_cols] += k["shortcut_strength"] * np.eye(4)[target][:, None, :]
                else:
                    z = (latent - mean) / std
                    target = bias * z + np.sqrt(1.0 - bias ** 2) * rng.normal(size=n)
                    x[:, :, short_cols[0]] += k["shortcut_strength"] * target[:, None]
                shortcut = target
            pad = np.zeros(n, dtype=np.int64)
            if k["left_pad"] > 0:
                pad = rng.integers(0, int(np.floor(k["left_pad"] * t)) + 1, size=n)
                x[np.arange(t)[None, :] < pad[:, None]] = 0.0
            pads[m] = pad
            split_data[m] = x.astype(np.float32)
        if k["audio_nonfinite"]:
            flat = split_data["audio"].reshape(-1)
            count = min(k["audio_nonfinite"], flat.size)
            flat[nonfinite_rng.choice(flat.size, size=count, replace=False)] = -np.inf
        if name == "iemocap":
            present = (y[:, None] == np.arange(4)[None, :]).astype(np.float32)
            split_data["labels"] = np.stack([1.0 - present, present], axis=-1).astype(np.float32)
        else:
            split_data["labels"] = y.astype(np.float32).reshape(n, 1, 1)
            span = 0.3 * k["lengths"]["text"]
            split_data["id"] = np.array([[f"synth{split}{i:05d}", "0.0", f"{span:.1f}"] for i in range(n)],
                                        dtype=object)
        data[split] = {key: split_data[key] for key in ("text", "audio", "vision", "labels", "id") if key in split_data}
        truth["splits"][split] = {"bias": bias, "y": y, "expressed": expressed, "shortcut": shortcut, "pad": pads}
    return data, truth


def make_mult(path: str | os.PathLike, dataset: str = "iemocap", seed: int = 0, **knobs: Any) -> Path:
    """Write a MulT-style ``iemocap`` or ``mosei`` pickle and return the path of the file.

    ``path``: a file name ending in ``.pkl`` (written there, replacing any file), or a folder: the
    file then goes to ``<folder>/mult_<dataset>-<hash of arguments>/<release name>`` (e.g.
    ``iemocap_data.pkl``, ``mosei_senti_data_noalign.pkl``) and is reused on later calls. Either way it
    is written to a temporary file and renamed into place, with ``pickle`` protocol 4: the same seed
    and knobs give byte-identical files. Read it with :func:`reprolib.data.mult.load_mult`.

    Format (exactly the MulT release's): ``{"train", "valid", "test"}``, each a dict of float32
    arrays ``text`` [N, T_t, d_t], ``audio`` [N, T_a, d_a], ``vision`` [N, T_v, d_v] and ``labels``
    (IEMOCAP [N, 4, 2] one-hot (absent, present) per emotion Neutral, Happy, Sad, Angry; MOSEI
    [N, 1, 1] sentiment in [-3, 3], multiples of 1/3 with exact zeros); MOSEI also has ``id``, an
    object array [N, 3] of (video id, start, end) strings, as the real file.

    Causal structure of each sample:

    * the emotion is drawn first. IEMOCAP: exactly one of the four emotions per sample (as in the
      real data, where the per-emotion positives add up to N) from ``emotion_probs``; each emotion is
      then a binary task. MOSEI: sentiment = round(3 u) / 3 clipped to [-3, 3], u ~ N(mean, std);
    * each modality **expresses** it with its own reliability: with probability
      ``expression_noise[m]`` the modality shows an independent draw instead (defaults text 0.2,
      audio 0.4, vision 0.6: text fairly clean, vision noisiest). The shown value is written as a
      temporal pattern spread over the sequence, ``signal * a * p_c(tau) * u_c`` with a fixed random
      direction ``u_c`` of the modality's features and rhythm ``p_c(tau) = 1 + 0.8 cos(2 pi (c+1) tau +
      phase)`` over normalised time (IEMOCAP: one component per emotion, a = 1; MOSEI: one axis,
      a = sentiment / 1.5), plus Gaussian noise ``feature_noise`` on every entry. Modalities are
      conditionally independent given the emotion, so fusing them helps;
    * the **dominant** modality (``dominant``, default text) additionally carries a **shortcut** in
      its last columns (:func:`mult_shortcut_columns`), constant over time and scaled by
      ``shortcut_strength``. IEMOCAP: one column per emotion, one-hot of an emotion that is the true
      one with probability ``bias`` and an independent draw otherwise (the per-emotion correlation
      between column and label is then exactly ``bias`` in expectation); MOSEI: one column,
      ``bias * z + sqrt(1 - bias^2) * noise`` with z the standardised latent sentiment (correlation
      about ``bias``). ``train`` and ``valid`` use ``bias``; ``test`` uses ``test_bias`` (default 0:
      independent of the label), so a model that learned the shortcut loses accuracy on test and
      collapses further when the dominant modality is removed, while a debiased one does not.
      With the defaults the shortcut (about 93 % agreement on IEMOCAP) beats the dominant
      modality's real signal (about 85 %) in training, so a plain model has a reason to lean on it;
    * ``left_pad`` > 0 zeroes a random number (up to that fraction of T) of leading steps per sample
      and modality, as the real files left-pad short utterances; ``audio_nonfinite`` sets that many
      random audio entries per split to ``-inf`` (the real audio has some; the loader cleans them).

    Knobs (smoke defaults in ``MULT_DEFAULTS``, plus ``MULT_IEMOCAP_DEFAULTS`` / ``MULT_MOSEI_DEFAULTS``):
    ``sizes`` ({"train", "valid" (or "val"), "test"}: samples, default 600 / 150 / 300), ``aligned``
    (True: one length for all three modalities, file ``*_data.pkl``; False: ``*_data_noalign.pkl``),
    ``lengths`` (int or per-modality dict; default 20 each aligned, text 20 / audio 50 / vision 50
    unaligned), ``dims`` (per modality, default text 32 (GloVe would be 300), audio 74, vision 35),
    ``dominant``, ``bias`` (0.9), ``test_bias`` (0.0), ``shortcut_strength`` (1.0),
    ``expression_noise`` (float or per-modality dict), ``signal`` (1.0), ``feature_noise`` (1.0),
    ``left_pad`` (0.0), ``audio_nonfinite`` (0), IEMOCAP ``emotion_probs`` (0.35, 0.125, 0.255, 0.27),
    MOSEI ``sentiment_mean`` (0.3) and ``sentiment_std`` (1.2). The ground truth (what each modality
    showed, the shortcut) is not written; :func:`generate_mult` recomputes it from the same arguments.
    Under torchrun, rank 0 writes the file first and the other processes then reuse it.
    """
    with distributed.main_process_first():
        return _write_mult(path, dataset, seed, knobs)


def _write_mult(path: str | os.PathLike, dataset: str, seed: int, knobs: dict[str, Any]) -> Path:
    import pickle

    from reprolib.data.mult import mult_filename

    name, k = _mult_knobs(dataset, knobs)
    path = Path(path)
    if path.suffix == ".pkl":
        target = path
    else:
        folder = dataset_dir(path, f"mult_{name}", seed, {**k, "format_version": MULT_FORMAT_VERSION})
        target = folder / mult_filename(name, k["aligned"])
        if target.is_file():
            return target
    atomic.remove_stale(target)  # free a killed run's half-written file before generating a new one
    data, _ = generate_mult(name, seed, **knobs)
    with atomic.replacing(target) as tmp:  # a unique temp, and those of killed writers removed first
        with open(tmp, "wb") as fh:
            pickle.dump(data, fh, protocol=4)
    return target
