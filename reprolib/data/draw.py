"""Drawing primitives for the synthetic datasets: scenes, faces and bodies.

The synthetic data has to make a causal story visible, so every picture is built from three
ingredients whose roles differ:

* the **scene** (background type) is the confounder: colours, horizon and a texture pattern that a
  small CNN reads at a glance;
* the **subject's expression** is caused by the emotion: mouth, brows and eyes, drawn small, so it
  takes more learning to read than the scene;
* **bystanders** carry the helpful context prior: their expressions agree with the subject's more
  often than chance.

All functions draw with Pillow onto an ``ImageDraw`` in a caller-chosen coordinate frame and take
their randomness from a ``numpy.random.Generator``, so a seed fixes every pixel.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

MOUTHS = ("smile", "frown", "flat", "open", "wavy", "grin")
BROWS = ("neutral", "raised", "furrowed", "sad")
EYES = ("normal", "wide", "narrow")
ARMS = ("down", "up", "out")


@dataclass(frozen=True)
class Expression:
    """What a face (and, for bodies, the arms) looks like; each field indexes the tuples above."""

    mouth: str = "flat"
    brows: str = "neutral"
    eyes: str = "normal"
    arms: str = "down"


def scene_palette(scene: int, n_scenes: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Sky and ground colours of a scene type: hues spread evenly so scenes are easy to tell apart."""
    hue = (scene / max(n_scenes, 1)) % 1.0
    sky = colorsys.hsv_to_rgb(hue, 0.45, 0.95)
    ground = colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.6, 0.55)
    return tuple(int(255 * c) for c in sky), tuple(int(255 * c) for c in ground)


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def draw_scene(draw: ImageDraw.ImageDraw, width: int, height: int, scene: int, n_scenes: int,
               rng: np.random.Generator) -> int:
    """Paint a background of the given scene type over the whole canvas.

    The scene type fixes the palette and one of four textures (stripes, dots, grid, blocks); the
    sample adds colour jitter, a random horizon height and random texture offsets, so scenes of one
    type are similar but never identical. Returns the horizon's y (sky above, ground below).
    """
    sky, ground = scene_palette(scene, n_scenes)
    sky, ground = _jitter(sky, rng, 18), _jitter(ground, rng, 18)
    horizon = int(height * rng.uniform(0.45, 0.7))
    draw.rectangle([0, 0, width, horizon], fill=sky)
    draw.rectangle([0, horizon, width, height], fill=ground)
    ink = tuple(int(c * 0.7) for c in sky)
    texture = (scene // max(1, (n_scenes + 3) // 4)) % 4 if n_scenes > 4 else scene % 4
    step = max(4, width // 8)
    offset = int(rng.integers(0, step))
    line = max(1, width // 64)
    if texture == 0:  # vertical stripes in the sky
        for x in range(offset, width, step):
            draw.rectangle([x, 0, x + step // 3, horizon], fill=ink)
    elif texture == 1:  # dots
        for x in range(offset, width, step):
            for y in range(offset // 2, horizon, step):
                r = step // 5
                draw.ellipse([x - r, y - r, x + r, y + r], fill=ink)
    elif texture == 2:  # grid
        for x in range(offset, width, step):
            draw.line([x, 0, x, horizon], fill=ink, width=line)
        for y in range(offset, horizon, step):
            draw.line([0, y, width, y], fill=ink, width=line)
    else:  # blocks standing on the horizon, like buildings
        x = offset - step
        while x < width:
            top = int(horizon * rng.uniform(0.25, 0.75))
            draw.rectangle([x, top, x + int(step * 0.7), horizon], fill=ink)
            x += step
    return horizon


def draw_face(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], expression: Expression,
              skin: tuple[int, int, int]) -> None:
    """Draw a face filling ``box`` (x1, y1, x2, y2) with the given expression."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    ink = (25, 20, 20)
    stroke = max(1, int(round(w / 12)))
    draw.ellipse([x1, y1, x2, y2], fill=skin, outline=ink, width=max(1, stroke // 2))

    def at(fx: float, fy: float) -> tuple[float, float]:
        return x1 + fx * w, y1 + fy * h

    # eyes
    eye_r = {"normal": 0.07, "wide": 0.11, "narrow": 0.035}[expression.eyes]
    for ex in (0.33, 0.67):
        cx, cy = at(ex, 0.42)
        ry = eye_r * h
        rx = 0.07 * w if expression.eyes == "narrow" else eye_r * w
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=ink)
    # brows: inner and outer end heights for the left brow, mirrored for the right
    inner, outer = {"neutral": (0.27, 0.27), "raised": (0.16, 0.18), "furrowed": (0.33, 0.22),
                    "sad": (0.20, 0.30)}[expression.brows]
    for outer_x, inner_x in ((0.20, 0.43), (0.80, 0.57)):
        draw.line([at(outer_x, outer), at(inner_x, inner)], fill=ink, width=stroke)
    # mouth
    mouth = expression.mouth
    if mouth in ("smile", "grin", "frown"):
        top = 0.58 if mouth != "frown" else 0.68
        arc = [*at(0.28, top), *at(0.72, top + 0.2)]
        start, end = (10, 170) if mouth != "frown" else (190, 350)
        if mouth == "grin":
            draw.chord(arc, start, end, fill=ink)
        else:
            draw.arc(arc, start, end, fill=ink, width=stroke)
    elif mouth == "flat":
        draw.line([at(0.32, 0.72), at(0.68, 0.72)], fill=ink, width=stroke)
    elif mouth == "open":
        draw.ellipse([*at(0.40, 0.62), *at(0.60, 0.86)], fill=ink)
    elif mouth == "wavy":
        pts = [at(0.28 + 0.088 * i, 0.72 + (0.05 if i % 2 else -0.03)) for i in range(6)]
        draw.line(pts, fill=ink, width=stroke)
    else:
        raise ValueError(f"unknown mouth {mouth!r}; expected one of {MOUTHS}")


JOINTS = ("head", "neck", "r_shoulder", "r_hand", "l_shoulder", "l_hand", "r_hip", "r_foot", "l_hip", "l_foot")


def draw_body(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], expression: Expression,
              skin: tuple[int, int, int], shirt: tuple[int, int, int]) -> list[tuple[float, float]]:
    """Draw a standing person filling ``box``: head with the expression, torso, arms in a pose, legs.

    Returns the (x, y) of each joint in :data:`JOINTS`, as a pose estimator would report them.
    """
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    head = min(w * 0.9, h * 0.34)
    stroke = max(1, int(round(w / 8)))
    draw.rectangle([cx - w * 0.3, y1 + head * 0.95, cx + w * 0.3, y1 + h * 0.68], fill=shirt)
    leg_top = y1 + h * 0.68
    joints: dict[str, tuple[float, float]] = {}
    for dx, side_name in ((-0.15, "r"), (0.15, "l")):
        draw.line([cx + dx * w, leg_top, cx + dx * 1.6 * w, y2], fill=(40, 40, 60), width=stroke)
        joints[f"{side_name}_hip"] = (cx + dx * w, leg_top)
        joints[f"{side_name}_foot"] = (cx + dx * 1.6 * w, y2)
    shoulder_y = y1 + head * 1.15
    joints["neck"] = (cx, shoulder_y)
    joints["head"] = (cx, y1 + head / 2)
    for side in (-1, 1):
        sx = cx + side * w * 0.3
        if expression.arms == "down":
            end = (sx + side * w * 0.12, y1 + h * 0.66)
        elif expression.arms == "up":
            end = (sx + side * w * 0.2, y1 + h * 0.02)
        elif expression.arms == "out":
            end = (sx + side * w * 0.2, shoulder_y + h * 0.06)
        else:
            raise ValueError(f"unknown arms {expression.arms!r}; expected one of {ARMS}")
        draw.line([sx, shoulder_y, *end], fill=skin, width=stroke)
        side_name = "r" if side < 0 else "l"
        joints[f"{side_name}_shoulder"] = (sx, shoulder_y)
        joints[f"{side_name}_hand"] = end
    draw_face(draw, (cx - head / 2, y1, cx + head / 2, y1 + head), expression, skin)
    return [joints[name] for name in JOINTS]


def random_skin(rng: np.random.Generator) -> tuple[int, int, int]:
    """A skin tone from a light-to-dark range, independent of every label."""
    t = rng.uniform(0.0, 1.0)
    light, dark = np.array([250, 220, 190]), np.array([120, 80, 55])
    return tuple(int(v) for v in light + t * (dark - light))


def random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(30, 226, size=3))
