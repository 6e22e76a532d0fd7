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
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw

from reprolib.data import draw as D

SPLITS = ("train", "val", "test", "test_ood")
CAER_CLASSES = ("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
GENERATOR_VERSION = 1
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
    "bias": 0.8,
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
    as the sidecar together with the arguments.
    """
    target = dataset_dir(root, name, seed, knobs)
    if (target / _COMPLETE_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        started = time.perf_counter()
        truth = writer(tmp, np.random.default_rng(seed))
        truth = {"generator": name, "version": GENERATOR_VERSION, "seed": int(seed), "knobs": knobs, **truth}
        (tmp / TRUTH_FILE).write_text(json.dumps(truth, sort_keys=True))
        (tmp / _COMPLETE_MARKER).write_text(f"{time.perf_counter() - started:.3f}\n")
        if target.exists():  # a stale, incomplete folder from an older crash
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_truth(dataset_root: str | os.PathLike) -> dict[str, Any]:
    """Read the ground-truth sidecar of a synthetic dataset (analysis only; real data has none)."""
    path = Path(dataset_root) / TRUTH_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no ground-truth sidecar; only synthetic datasets carry one")
    return json.loads(path.read_text())


def sample_scene(rng: np.random.Generator, emotion: int, n_classes: int, n_scenes: int, bias: float) -> int:
    """A scene for this emotion: a favouring scene with probability ``bias``, else any scene.

    Scene ``s`` favours emotion ``s % n_classes``.
    """
    favoured = [s for s in range(n_scenes) if s % n_classes == emotion]
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
    box = [int(round(v / ss)) for v in face]
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
