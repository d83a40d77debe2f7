"""Reading images safely: every failure becomes an ImageReadError that names the file and the problem.

EXIF orientation is applied; greyscale, RGBA, palette, 16-bit and CMYK images become 8-bit RGB
(transparent areas over white); an animated image gives its first frame.  Decompression bombs
(more than MAX_PIXELS pixels) are refused before their pixels are decoded.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError

MAX_PIXELS = 64_000_000  # ~ 8000 x 8000; larger is refused as a likely decompression bomb
MIN_SIDE = 8  # smaller images carry nothing to look at


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale the actual range to 8 bits rather than clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").split()[-1])
        return background
    return img.convert("RGB")


def open_image(source: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
    """Read an image from a path or bytes into an 8-bit RGB PIL image, upright."""
    if name is None:
        name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ImageReadError(f"{name}: file not found")
            data = path.read_bytes()
        if len(data) == 0:
            raise ImageReadError(f"{name}: the file is empty (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageReadError(
                    f"{name}: {w} x {h} = {w * h:,} pixels is more than the {MAX_PIXELS:,} allowed "
                    "(a possible decompression bomb); downscale it first"
                )
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated: the first frame
            img.load()
            img = ImageOps.exif_transpose(img)
        if min(img.size) < MIN_SIDE:
            raise ImageReadError(f"{name}: {img.size[0]} x {img.size[1]} pixels is too small (at least {MIN_SIDE} per side)")
        return _to_rgb(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image file (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except OSError as exc:
        raise ImageReadError(f"{name}: the image is damaged or truncated ({exc})") from None
    except (ValueError, SyntaxError, struct.error, MemoryError) as exc:
        raise ImageReadError(f"{name}: the image cannot be decoded ({type(exc).__name__}: {exc})") from None

