"""The views every context-aware model needs, cut from one image and one subject box.

Both loaders (CAER-S faces, EMOTIC bodies) go through these functions, so a box is cleaned and a
subject is masked the same way everywhere:

* ``subject``: the crop of the box (face or body);
* ``context``: the whole image with the box painted black *before* any normalisation, as the CAER-Net
  context stream, the CCIM dictionary and the CLEF context branch use it;
* ``image``: the whole image, unmasked.

No box (an all-zero line, meaning the detector found no face) is documented behaviour, not an error:
the subject view is the whole image, the context is the unmasked image, and ``has_box`` is False so
analyses can count or drop such samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataFormatError(ValueError):
    """Raised for input that does not follow the dataset format; the message names the file."""


@dataclass(frozen=True)
class BoxFix:
    """How a raw box was repaired; loaders count these so a user sees how clean the annotations were."""

    reversed: bool = False
    clipped: bool = False


def normalise_box(raw: Sequence[float], width: int, height: int, source: str) -> tuple[tuple[int, int, int, int] | None, BoxFix]:
    """Turn a raw (x1, y1, x2, y2) box into a clean integer box inside the image.

    Reversed corners are swapped (some real annotation files have them), a box reaching past the
    border is clipped, an all-zero box means "no subject box" (returns None). A box with no area
    inside the image is bad input and raises :class:`DataFormatError` naming ``source``.
    """
    if len(raw) != 4:
        raise DataFormatError(f"{source}: a box needs 4 numbers x1,y1,x2,y2, got {list(raw)}")
    x1, y1, x2, y2 = (float(v) for v in raw)
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise DataFormatError(f"{source}: box {list(raw)} has a non-finite coordinate")
    if x1 == y1 == x2 == y2 == 0:
        return None, BoxFix()
    rev = x1 > x2 or y1 > y2
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    cx1, cy1 = max(0.0, x1), max(0.0, y1)
    cx2, cy2 = min(float(width), x2), min(float(height), y2)
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    box = (int(np.floor(cx1)), int(np.floor(cy1)), int(np.ceil(cx2)), int(np.ceil(cy2)))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        raise DataFormatError(
            f"{source}: box {list(raw)} has no area inside the {width}x{height} image")
    return box, BoxFix(reversed=rev, clipped=clipped)


def open_rgb(path) -> Image.Image:
    """Open an image as RGB, turning any decoding failure into an error that names the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: image file is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot decode image ({err})") from None


def size_wh(size: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) from an int (square) or a (height, width) pair, torchvision's convention."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(w), int(h)


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def cut_views(img: Image.Image, box: tuple[int, int, int, int] | None, subject_size, context_size,
              image_size) -> dict[str, torch.Tensor]:
    """Subject crop, masked context and full image as uint8 CHW tensors of the requested sizes."""
    subject = img.crop(box) if box is not None else img
    context = img.copy()
    if box is not None:
        # PIL rectangles include their far edge; the box is half-open like a crop.
        ImageDraw.Draw(context).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=(0, 0, 0))
    return {
        "subject": to_uint8_tensor(subject.resize(size_wh(subject_size), Image.BILINEAR)),
        "context": to_uint8_tensor(context.resize(size_wh(context_size), Image.BILINEAR)),
        "image": to_uint8_tensor(img.resize(size_wh(image_size), Image.BILINEAR)),
    }


def to_float_views(views: dict[str, torch.Tensor], normalize: bool) -> dict[str, torch.Tensor]:
    """uint8 views to float in [0, 1], then ImageNet-normalised when asked (masking happened before)."""
    out = {}
    for name, t in views.items():
        x = t.float().div_(255.0)
        if normalize:
            mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
            x = (x - mean) / std
        out[name] = x
    return out
