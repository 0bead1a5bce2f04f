"""Checks on untrusted uploads, each with its own plain-words message.

The format is detected from the bytes (never the name or Content-Type), the
whole image is decoded (a truncated file fails here, not in the detector), a
decompression bomb is refused before its pixels are allocated, and data hidden
after the image's end is refused too.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image

from .ml.preprocessing import SERVING_DECODE_SIDE, DecodedImage, ImageDecodeError, decode

ALLOWED_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
PNG_END = b"IEND\xaeB`\x82"


@dataclass
class CheckedImage:
    """An upload that passed the checks, with the pixels they decoded: nothing decodes it again."""

    data: bytes
    format: str
    extension: str
    content_type: str
    sha256: str
    decoded: DecodedImage  # upright RGB, for a large JPEG at a reduced scale (see preprocessing.decode)

    @property
    def width(self) -> int:
        return self.decoded.width

    @property
    def height(self) -> int:
        return self.decoded.height


def _reject(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


def _has_trailing_data(data: bytes, fmt: str) -> bool:
    if fmt == "PNG":
        return not data.endswith(PNG_END)
    if fmt == "WEBP":
        (riff_size,) = struct.unpack("<I", data[4:8])
        return len(data) > riff_size + 8 + (riff_size & 1)
    if fmt == "JPEG":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    return False


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Validate upload bytes; raises ValidationError with a message for the user."""
    if len(data) > max_bytes:
        raise _reject(f"The file is larger than {max_bytes / 1024 / 1024:.0f} MB.", "too_large")
    if not data:
        raise _reject("The file is empty.", "empty")
    try:
        decoded = decode(data, max_pixels, formats=list(ALLOWED_FORMATS), min_side=SERVING_DECODE_SIDE)
    except ImageDecodeError as exc:
        if exc.code == "unsupported_format":
            raise _reject("This is not a JPEG, PNG or WebP image.", exc.code) from exc
        if exc.code == "too_many_pixels":
            raise _reject(str(exc), exc.code) from exc
        raise _reject(f"The image is truncated or damaged ({exc.__cause__ or exc}).", "damaged") from exc
    if _has_trailing_data(data, decoded.format):
        raise _reject("The file has extra data after the image; upload the plain image.", "trailing_data")
    extension, content_type = ALLOWED_FORMATS[decoded.format]
    return CheckedImage(data, decoded.format, extension, content_type, hashlib.sha256(data).hexdigest(), decoded)


def decode_stored(data: bytes) -> DecodedImage:
    """A stored original decoded as its upload was (for a worker's analysis and the heatmaps)."""
    return decode(data, formats=list(ALLOWED_FORMATS), min_side=SERVING_DECODE_SIDE)


def max_upload_bytes() -> int:
    return int(settings.DETECTOR_MAX_UPLOAD_MB * 1024 * 1024)


def check_upload(upload) -> CheckedImage:
    """Check an uploaded file against the configured limits; its size before its bytes are read."""
    max_bytes = max_upload_bytes()
    if upload.size > max_bytes:
        raise _reject(f"The file is larger than {settings.DETECTOR_MAX_UPLOAD_MB:g} MB.", "too_large")
    upload.seek(0)
    return check_image(upload.read(max_bytes + 1), max_bytes, settings.DETECTOR_MAX_PIXELS)


def check_batch(uploads: list) -> list:
    """The files of one batch: at least one, and no more than ``DETECTOR_BATCH_MAX_FILES``."""
    if not uploads:
        raise _reject("Choose one or more images.", "required")
    if len(uploads) > settings.DETECTOR_BATCH_MAX_FILES:
        raise _reject(f"Upload at most {settings.DETECTOR_BATCH_MAX_FILES} images at a time.", "too_many_files")
    return uploads


def derived_jpegs(image: Image.Image, sides: tuple[int, ...], quality: int = 85) -> list[bytes]:
    """Smaller copies, largest first, re-encoded from pixels only (no EXIF, ICC, comment or trailing bytes).

    One resize chain: each copy is made from the previous one, and a copy that needs no resizing is not copied.
    """
    out, current = [], image
    for side in sorted(sides, reverse=True):
        if max(current.size) > side:
            current = current.copy()
            current.thumbnail((side, side), Image.BILINEAR)  # antialiased; half the time of LANCZOS on a large photo
        buf = io.BytesIO()
        current.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out
