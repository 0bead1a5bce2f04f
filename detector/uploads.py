"""Checks on untrusted uploads, each with its own plain-words message.

The format is detected from the bytes (never the name or Content-Type), the
whole image is decoded (a truncated file fails here, not in the detector), a
decompression bomb is refused before its pixels are allocated, and data hidden
after the image's end is refused too.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import struct
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image

from .ml.inference.preprocessing import SERVING_DECODE_SIDE, DecodedImage, ImageDecodeError, decode
from .ml.inference.video import CONTAINERS, VideoError, VideoInfo, container_of, probe

log = logging.getLogger(__name__)

ALLOWED_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "HEIF": ("heic", "image/heic"),  # HEIC photos from phones (pillow-heif)
    "AVIF": ("avif", "image/avif"),
}
IMAGE_FORMATS_TEXT = "JPEG, PNG, WebP, HEIC or AVIF"
# What the file pickers offer (the server recognises every file from its bytes, whatever it is called).
ACCEPTED_TYPES = ",".join(
    [t for _, t in ALLOWED_FORMATS.values()] + [t for _, t in CONTAINERS.values()] + [".heic", ".heif", ".mkv"]
)
# Many phones save a JPEG with more images after the first (MPO: depth maps, Ultra HDR gain maps). Pillow reports
# it as MPO; it is a JPEG, and the first image is the photo.
SAME_AS = {"MPO": "JPEG"}
# A marker in JPEG entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker or a fill byte.
JPEG_MARKER = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])", re.DOTALL)


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


@dataclass
class CheckedVideo:
    """A video upload that passed the checks: streamed from its file, never read whole into memory."""

    file: object  # the uploaded file, at its start
    format: str
    extension: str
    content_type: str
    sha256: str
    size: int
    info: VideoInfo

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height


def _reject(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


class BrokenStructure(ValueError):
    """The file's segments or chunks do not add up."""


def _jpeg_extent(data: bytes) -> tuple[int, int, int | None]:
    """Where the first JPEG image ends (after its EOI marker), how many bytes of entropy-coded data it holds,
    and where its MPF header starts (the offsets of an MPO's further images count from there), if it has one."""
    i, n, scan_bytes, mpf = 2, len(data), 0, None
    while True:
        i = data.find(b"\xff", i)  # libjpeg skips stray bytes between segments too
        if i < 0:
            raise BrokenStructure("no end-of-image marker")
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            raise BrokenStructure("no end-of-image marker")
        marker, i = data[i], i + 1
        if marker == 0xD9:
            return i, scan_bytes, mpf
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2 or i + length > n:
            raise BrokenStructure("a segment runs past the end of the file")
        if marker == 0xE2 and data[i + 2 : i + 6] == b"MPF\x00":
            mpf = i + 6
        i += length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            found = JPEG_MARKER.search(data, i)
            if found is None:
                raise BrokenStructure("a scan runs past the end of the file")
            scan_bytes += found.start() - i
            i = found.start()


def _png_extent(data: bytes) -> int:
    """Where a PNG ends: after its first IEND chunk."""
    i, n = 8, len(data)
    while i + 12 <= n:
        length, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
        i += 12 + length
        if kind == b"IEND":
            return i
    raise BrokenStructure("no IEND chunk")


MISSING_JPEG_DATA = (128, 128, 128)  # what libjpeg decodes the blocks to that a file cut short lacks


def _ends_in_missing_data(image: Image.Image) -> bool:
    """Whether a whole edge band of the decoded JPEG is exactly the grey of missing data: what a file cut
    part-way, with an end-of-image marker added to pass as whole, decodes to (libjpeg only warns). The band is an
    eighth of the picture deep, so a genuine flat border is not taken for one (a file cut within its last eighth
    passes); any edge, since the EXIF orientation may have turned the picture."""
    w, h = image.size
    if min(w, h) <= 64:
        return False
    across, down = h // 8, w // 8
    for box in ((0, h - across, w, h), (0, 0, w, across), (0, 0, down, h), (w - down, 0, w, h)):
        colours = image.crop(box).getcolors(1)  # None where the band has more than one colour
        if colours and colours[0][1] == MISSING_JPEG_DATA:
            return True
    return False


def _iso_bmff_extent(data: bytes) -> int:
    """Where an ISO-BMFF file (HEIC, AVIF) ends: after its last whole top-level box, each box's size in its header.
    Bytes that are no box end it (they are extra data; a file cut short has already failed to decode)."""
    i, n = 0, len(data)
    while i + 8 <= n:
        size = int.from_bytes(data[i : i + 4], "big")
        if size == 1:  # a 64-bit size follows the type
            size = int.from_bytes(data[i + 8 : i + 16], "big")
        elif size == 0:  # the last box runs to the end of the file
            return n
        if size < 8 or i + size > n or not data[i + 4 : i + 8].isalnum():
            break
        i += size
    if i == 0:
        raise BrokenStructure("no ISO-BMFF box")
    return i


def _image_end(data: bytes, decoded: DecodedImage) -> int:
    """Where the image data ends, from the file's own structure (segments, chunks, the RIFF size, an MPO's index,
    ISO-BMFF boxes)."""
    if decoded.format == "PNG":
        return _png_extent(data)
    if decoded.format in ("HEIF", "AVIF"):
        return _iso_bmff_extent(data)
    if decoded.format == "WEBP":
        (riff_size,) = struct.unpack("<I", data[4:8])
        return riff_size + 8 + (riff_size & 1)
    end, scan_bytes, mpf = _jpeg_extent(data)
    # Every 8x8 block of brightness costs at least a bit, whatever the tables: a file with fewer bits than that
    # declares pixels it does not hold (a truncated file, or a bomb of mostly grey).
    if scan_bytes * 8 < -(-decoded.width // 8) * -(-decoded.height // 8):
        raise BrokenStructure(f"{scan_bytes} bytes of image data cannot hold {decoded.width}x{decoded.height} pixels")
    if _ends_in_missing_data(decoded.image):
        raise BrokenStructure("its last part is missing and decodes to flat grey")
    if decoded.format == "MPO" and mpf is not None:
        with Image.open(io.BytesIO(data)) as im:
            entries = getattr(im, "mpinfo", {}).get(0xB002, [])
        for entry in entries:
            if entry["DataOffset"]:
                start = mpf + entry["DataOffset"]
                if data[start : start + 2] != b"\xff\xd8":
                    raise BrokenStructure("an MPO entry does not start a JPEG image")
                end = max(end, start + entry["Size"])
    return end


# In plain words: the decoder's own reason ("78 bytes not processed") goes to the log, not to people.
DAMAGED = (
    "The image is truncated or damaged: part of the file is missing or corrupt. "
    "Try the original file, or save it again and upload that copy."
)


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
            raise _reject(
                f"This is not a {IMAGE_FORMATS_TEXT} image, nor an MP4, MOV, WebM or MKV video.", exc.code
            ) from exc
        if exc.code == "too_many_pixels":
            raise _reject(str(exc), exc.code) from exc
        log.info("upload refused as damaged: %s", exc.__cause__ or exc)
        raise _reject(DAMAGED, "damaged") from exc
    try:
        end = _image_end(data, decoded)
    except (BrokenStructure, struct.error, KeyError, TypeError, ValueError, OSError) as exc:
        log.info("upload refused as damaged: %s", exc)
        raise _reject(DAMAGED, "damaged") from exc
    if data[end:].strip(b"\x00"):
        raise _reject("The file has extra data after the image; upload the plain image.", "trailing_data")
    fmt = SAME_AS.get(decoded.format, decoded.format)
    extension, content_type = ALLOWED_FORMATS[fmt]
    return CheckedImage(data, fmt, extension, content_type, hashlib.sha256(data).hexdigest(), decoded)


def decode_stored(data: bytes) -> DecodedImage:
    """A stored original decoded as its upload was (for a worker's analysis and the heatmaps)."""
    return decode(data, formats=list(ALLOWED_FORMATS), min_side=SERVING_DECODE_SIDE)


def max_upload_bytes() -> int:
    """The largest image accepted."""
    return int(settings.DETECTOR_MAX_UPLOAD_MB * 1024 * 1024)


def max_video_bytes() -> int:
    return int(settings.DETECTOR_MAX_VIDEO_MB * 1024 * 1024)


def max_file_bytes() -> int:
    """The largest file of any kind accepted (what a request may carry per file)."""
    return max(max_upload_bytes(), max_video_bytes())


def check_upload(upload) -> CheckedImage | CheckedVideo:
    """Check an uploaded file against the configured limits; its size before its bytes are read. A video is
    recognised from its first bytes and checked as one; anything else must be an image."""
    upload.seek(0)
    container = container_of(upload.read(64))
    upload.seek(0)
    if container is not None:
        return check_video(upload, container)
    max_bytes = max_upload_bytes()
    if upload.size > max_bytes:
        raise _reject(f"The file is larger than {settings.DETECTOR_MAX_UPLOAD_MB:g} MB.", "too_large")
    return check_image(upload.read(max_bytes + 1), max_bytes, settings.DETECTOR_MAX_PIXELS)


def _video_source(upload):
    """What PyAV reads the upload from: its temporary file's path where it has one, else the file itself."""
    path = getattr(upload, "temporary_file_path", None)
    return path() if path else upload.file


def check_video(upload, container: str) -> CheckedVideo:
    """A video's checks: size, then a real probe of its streams (``ml.inference.video.probe``), each with its own
    message."""
    if upload.size > max_video_bytes():
        raise _reject(f"The video is larger than {settings.DETECTOR_MAX_VIDEO_MB:g} MB.", "too_large")
    if not upload.size:
        raise _reject("The file is empty.", "empty")
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    try:
        info = probe(
            _video_source(upload), settings.DETECTOR_MAX_VIDEO_SECONDS, settings.DETECTOR_MAX_PIXELS, container
        )
    except VideoError as exc:
        log.info("video refused (%s): %s", exc.code, exc.__cause__ or exc)
        raise _reject(str(exc), exc.code) from exc
    finally:
        upload.seek(0)
    extension, content_type = CONTAINERS[container]
    return CheckedVideo(upload, container, extension, content_type, digest.hexdigest(), upload.size, info)


def check_batch(uploads: list) -> list:
    """The files of one batch: at least one, and no more than ``DETECTOR_BATCH_MAX_FILES``."""
    if not uploads:
        raise _reject("Choose one or more images or videos.", "required")
    if len(uploads) > settings.DETECTOR_BATCH_MAX_FILES:
        raise _reject(f"Upload at most {settings.DETECTOR_BATCH_MAX_FILES} files at a time.", "too_many_files")
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
