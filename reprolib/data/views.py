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

import math
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import IO, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from reprolib.data.errors import DataFormatError  # noqa: F401 - re-exported: loaders import it from here

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PIL's default decompression-bomb limit (about 9459 x 9459), fixed here so that a program that lifts PIL's
# global limit does not lift ours: a CAER-S or EMOTIC frame is a small fraction of it.
MAX_IMAGE_PIXELS = 89_478_485
_UNSIGNED_16 = ("I;16", "I;16B", "I;16L", "I;16N")


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


def open_image(path, mode: str = "RGB", *, what: str = "image file", missing_hint: str = "") -> Image.Image:
    """Open an image as ``mode`` ("RGB" or "L"); every bad file ends in a :class:`DataFormatError` naming it.

    The one place images are opened, so every view gets the same bounds: more than
    :data:`MAX_IMAGE_PIXELS` pixels is refused before any pixel is decoded (PIL's decompression-bomb
    warning counts as a refusal too), 16-bit samples are scaled to 8 bits instead of clipped at 255,
    and 32-bit integer (values outside 0..255) or floating-point images are refused, as their range
    is unknown. Any other image decodes exactly as ``Image.convert(mode)`` does.
    """
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                pixels = im.width * im.height
                if pixels > MAX_IMAGE_PIXELS:
                    raise DataFormatError(
                        f"{path}: {what} declares {im.width}x{im.height} = {pixels} pixels, above the bound of "
                        f"{MAX_IMAGE_PIXELS} pixels (a decompression bomb? dataset frames are far smaller)")
                im.load()
                return _convert(im, mode, path, what)
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(f"{path}: {what} is missing{missing_hint}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataFormatError(f"{path}: {what} refused as a possible decompression bomb ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as err:
        raise DataFormatError(f"{path}: cannot decode {what} ({err})") from None


def _convert(im: Image.Image, mode: str, path, what: str) -> Image.Image:
    """``im`` in ``mode``, for sample depths where ``Image.convert`` would clip or guess silently."""
    if im.mode in _UNSIGNED_16:
        # The top 8 bits, as PIL itself reduces 16-bit RGB PNGs; convert() would clip every value at 255.
        return Image.fromarray((np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)).convert(mode)
    if im.mode == "I":
        lo, hi = im.getextrema()
        if lo < 0 or hi > 255:
            raise DataFormatError(f"{path}: {what} is a 32-bit integer image with values {lo}..{hi}; "
                                  "expected 8-bit or 16-bit samples")
    if im.mode == "F":
        raise DataFormatError(f"{path}: {what} is a floating-point image; expected 8-bit or 16-bit samples")
    return im.convert(mode)


def open_rgb(path) -> Image.Image:
    """Open an image as RGB (see :func:`open_image`)."""
    return open_image(path, "RGB")


def read_npy_header(fh: IO[bytes], source: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data bytes)`` from the header of a ``.npy`` stream, leaving ``fh`` at the data.

    Read before any data so a loader can check the declared size against the bytes really there: a
    header may declare terabytes, and ``numpy`` allocates what it declares before reading.
    """
    try:
        magic = fh.read(8)
        if magic[:2] == b"PK":
            raise DataFormatError(f"{source}: a zip archive (an .npz?), not a .npy array")
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise DataFormatError(f"{source}: not a .npy array (starts with {magic[:8]!r})")
        version = (magic[6], magic[7])
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise DataFormatError(f"{source}: .npy format version {version[0]}.{version[1]} is not supported")
    except DataFormatError:
        raise
    except (ValueError, EOFError, OSError, struct.error) as err:
        raise DataFormatError(f"{source}: unreadable .npy header ({err})") from None
    if any(n < 0 for n in shape):
        raise DataFormatError(f"{source}: .npy header declares a negative dimension in {shape}")
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize


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
