"""Per-file image decoding: bytes -> uint8 (3, S, S) RGB array, or a reason it was skipped.

Decoding is by content, not by file extension: a PNG saved under a .jpg name is a valid picture and
is kept (Microsoft's PetImages has a few). Only `jfif_only=True`, which reproduces TensorFlow
Datasets' filter (keep a file only if its first 10 bytes contain b"JFIF"), drops it. EXIF
orientation is ignored, as TensorFlow's decoder ignores it.
"""
import io
import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

# File names we try to decode; anything else (Thumbs.db, .txt, ...) is skipped without reading.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif",
                              ".tiff"})
# Pillow plugins allowed to open a file. Restricting them keeps hostile files away from plugins such
# as EPS (which would start Ghostscript) and makes the per-file cost predictable.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
Image.init()  # register every plugin now: Image.open(formats=...) only sees loaded ones
# No photo in any supported archive comes close; larger files are refused before being read.
MAX_FILE_BYTES = 64 * 1024 * 1024

REASON_EMPTY = "empty file"
REASON_NOT_JFIF = "no JFIF marker in header"
REASON_NOT_IMAGE = "not an image"
REASON_CORRUPT = "truncated or corrupt image"
REASON_TOO_LARGE = "image too large"
REASON_FILE_TOO_LARGE = "file too large"
REASON_UNREADABLE = "unreadable file"
REASON_NOT_IMAGE_NAME = "not an image file name"


def has_image_extension(name: str) -> bool:
    """True when the file name ends in an image extension we attempt to decode."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_jfif(data: bytes) -> bool:
    """TensorFlow Datasets' cats_vs_dogs filter: the JFIF marker must appear in the first 10 bytes."""
    return b"JFIF" in data[:10]


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any supported colour mode to 8-bit RGB (alpha is dropped, not composited)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        # 16-bit / float greyscale: 65535 / 257 = 255 maps the 16-bit range onto 8 bits.
        scale = 1.0 if im.mode == "F" else 1.0 / 257.0
        grey = np.clip(np.asarray(im, dtype=np.float64) * scale, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return im.convert("RGB")


def decode_bytes(data: bytes, image_size: int, jfif_only: bool = False):
    """Decode one image file's bytes and resize it (bilinear, aspect not kept).

    Returns (array, None) with a C-contiguous uint8 array of shape (3, image_size, image_size), or
    (None, reason) when the file must be skipped. Never raises on bad input: every decoder failure is
    a skip reason, so one bad photo cannot stop a 25,000-file load.
    """
    if not data:
        return None, REASON_EMPTY
    if jfif_only and not is_jfif(data):
        return None, REASON_NOT_JFIF
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises at twice that; treat both as "too large".
            # Other decoder warnings (corrupt EXIF, ...) would repeat for thousands of files: the
            # outcome that matters is recorded as the skip reason or the decoded pixels.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as im:
                im.load()
                small = _to_rgb(im).resize((image_size, image_size), Image.Resampling.BILINEAR)
        hwc = np.asarray(small, dtype=np.uint8)
    except UnidentifiedImageError:
        return None, REASON_NOT_IMAGE
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, REASON_TOO_LARGE
    except Exception:  # noqa: BLE001 - hostile bytes can trip any error type inside a plugin
        return None, REASON_CORRUPT
    return np.ascontiguousarray(hwc.transpose(2, 0, 1)), None


def decode_file(path, image_size: int, jfif_only: bool = False):
    """Read and decode one file; same return convention as `decode_bytes`."""
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return None, REASON_FILE_TOO_LARGE
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None, REASON_UNREADABLE
    return decode_bytes(data, image_size, jfif_only)
