"""The one preprocessing path used by training, evaluation and serving.

decode (EXIF orientation, RGB) -> find faces -> square crop with a fixed margin
around each face -> resize to the model's input size.  Where no face is found
the centre square of the whole image is used, and that is recorded.  Pixel
scaling happens inside the model, so the arrays here stay uint8.

A model that reads pixel-level traces (a generator's up-sampling, its noise) must
not see them resampled: its :class:`CropSpec` says ``native``, and its crop is the
centre ``size`` x ``size`` pixels of the same square, cut from the picture at full
resolution without any resizing (the square is enlarged only where it is smaller
than that). Several models judging the same faces each get their own crop of them
(:attr:`FaceCrop.views`), from one face search.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from .faces import BlazeFaceDetector, FaceBox, weighted_nms

# HEIF and HEIC (what phones save) through pillow-heif; Pillow reads AVIF itself. pillow-heif turns the picture
# upright from the container's own rotation and sets the EXIF orientation to 1, so nothing turns it twice.
pillow_heif.register_heif_opener()

PREPROCESSING_VERSION = 1
DEFAULT_INPUT_SIZE = 224
DEFAULT_MARGIN = 0.2
MAX_FACES = 8
MIN_FACE_PIXELS = 16
RESIZED = "resized"  # the face's square resized to the input size
NATIVE = "native"  # the centre of the face's square at full resolution, not resized
CROP_SCALES = (RESIZED, NATIVE)


@dataclass(frozen=True)
class CropSpec:
    """How a model wants a face cut: its input size, the margin around the face box, and ``scale``."""

    size: int = DEFAULT_INPUT_SIZE
    margin: float = DEFAULT_MARGIN
    scale: str = RESIZED

    def __post_init__(self):
        if self.scale not in CROP_SCALES:
            raise ValueError(f"unknown crop scale {self.scale!r}; one of {', '.join(CROP_SCALES)}")


@dataclass
class FaceCrop:
    box: FaceBox | None  # None: the centre-square fallback
    pixels: np.ndarray  # (size, size, 3) uint8, as the first model asked
    views: dict = field(default_factory=dict, repr=False)  # CropSpec -> pixels, for the other models' specs

    def view(self, spec: CropSpec | None) -> np.ndarray:
        """This face cut as ``spec`` says (the first model's crop where none is asked or it is that one)."""
        return self.views[spec] if spec is not None and spec in self.views else self.pixels


@dataclass
class PreparedImage:
    width: int
    height: int
    crops: list[FaceCrop] = field(default_factory=list)

    @property
    def face_found(self) -> bool:
        return bool(self.crops) and self.crops[0].box is not None

    def batch(self, spec: CropSpec | None = None) -> np.ndarray:
        return np.stack([c.view(spec) for c in self.crops])


class ImageDecodeError(ValueError):
    """The bytes are not an image this platform can read; ``code`` says why."""

    def __init__(self, message: str, code: str = "damaged"):
        super().__init__(message)
        self.code = code  # "unsupported_format", "too_many_pixels" or "damaged"


DRAFT_SCALES = (1, 2, 4, 8)  # what a JPEG decoder can reduce by while decoding (its DCT scaling)
# Serving decodes a large JPEG reduced, as long as its long side keeps this many pixels: at that size a face the
# finder can find is mostly large enough to crop at the model's input size without enlarging it; a smaller one is
# cropped from a decode at the scale it needs (DecodedImage.at_least). Entropy decoding costs the same at any
# scale, so the gain is in what follows (colour conversion, copies, resizing), not in the decode itself.
SERVING_DECODE_SIDE = 1600
# The face finder (it looks at 128 and 192 px), the preview and the thumbnail work on a copy reduced by an
# integer box filter to no less than this long side.
WORKING_SIDE = 800


@dataclass
class DecodedImage:
    """An upright RGB image, decoded at full size or (JPEG) reduced, with the size of the full picture.

    Face boxes are always in pixels of the full upright picture, whatever scale the pixels were decoded at.
    """

    image: Image.Image
    width: int  # of the full upright picture
    height: int
    format: str | None = None
    source: bytes | None = field(default=None, repr=False)  # to decode again at a larger scale
    _larger: dict = field(default_factory=dict, repr=False)

    @property
    def scale(self) -> float:
        return self.image.width / self.width

    @cached_property
    def working(self) -> Image.Image:
        """A smaller copy for the face finder and the previews (the image itself where it is small)."""
        factor = max(1, max(self.image.size) // WORKING_SIDE)
        return self.image if factor == 1 else self.image.reduce(factor)

    def at_least(self, scale: float) -> DecodedImage:
        """This picture decoded at ``scale`` of its full size or more (itself where it already is)."""
        if self.scale >= scale or self.source is None:
            return self
        reduce = max((k for k in DRAFT_SCALES if 1 / k >= scale), default=1)
        if reduce not in self._larger:
            self._larger[reduce] = _decode(self.source, reduce=reduce)
        return self._larger[reduce]


def _upright(im: Image.Image, full: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image turned upright (in place: no copy) in RGB, and the full picture's size turned alike."""
    raw = im.size
    ImageOps.exif_transpose(im, in_place=True)
    upright = im if im.mode == "RGB" else im.convert("RGB")
    upright.info.clear()  # nothing of the file's metadata travels with the pixels
    turned = upright.size != raw  # a quarter turn swaps the sides (of the full picture too)
    return upright, (full[1], full[0]) if turned else full


def _decode(source, max_pixels=None, formats=None, min_side=None, reduce=None) -> DecodedImage:
    data = source if isinstance(source, (bytes, bytearray)) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if data is not None else source, formats=formats) as im:
                full = im.size
                if max_pixels and im.width * im.height > max_pixels:
                    raise ImageDecodeError(
                        f"The image has {im.width}×{im.height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.",
                        "too_many_pixels",
                    )
                if im.format in ("JPEG", "MPO") and (reduce or min_side):
                    k = reduce or max(k for k in DRAFT_SCALES if max(full) / k >= min_side or k == 1)
                    if k > 1:
                        im.draft("RGB", (full[0] // k, full[1] // k))  # at least this size: 1/k
                fmt = im.format
                im.load()  # the whole file is decoded: a truncated one fails here
                upright, (width, height) = _upright(im, full)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"cannot identify the image: {exc}", "unsupported_format") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageDecodeError("The image declares too many pixels to open safely.", "too_many_pixels") from exc
    except (OSError, ValueError, SyntaxError, struct.error, EOFError) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    reduced = upright.size != (width, height)
    return DecodedImage(upright, width, height, fmt, bytes(data) if reduced and data is not None else None)


def decode(
    source: bytes | str, max_pixels: int | None = None, formats: list[str] | None = None, min_side: int | None = None
) -> DecodedImage:
    """Decode bytes or a path into an upright RGB image; raises ImageDecodeError (with a ``code``).

    ``min_side``: a JPEG may be decoded reduced (1/2, 1/4 or 1/8) as long as its long side keeps this many
    pixels (serving uses ``SERVING_DECODE_SIDE``); the file is still decoded whole, so a truncated one is still
    refused.
    """
    return _decode(source, max_pixels, formats, min_side)


def decode_image(data: bytes | str, max_pixels: int | None = None) -> Image.Image:
    """Decode bytes or a path into a full-size upright RGB image; raises ImageDecodeError."""
    return decode(data, max_pixels).image


class FaceFinder:
    """BlazeFace short range (close-ups, with a margin) united with full range (distant faces)."""

    def __init__(self, num_threads: int | None = None):
        self._short = BlazeFaceDetector("short", pad_fraction=0.25, num_threads=num_threads)
        self._full = BlazeFaceDetector("full", pad_fraction=0.0, num_threads=num_threads)

    def __call__(self, image: Image.Image) -> list[FaceBox]:
        found = self._short.detect(image) + self._full.detect(image)
        found = [f for f in found if min(f.w, f.h) >= MIN_FACE_PIXELS]
        if not found:
            return []
        boxes = np.array([[f.x, f.y, f.x + f.w, f.y + f.h] for f in found])
        scores = np.array([f.score for f in found])
        merged = drop_group_boxes(
            [
                FaceBox(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1]), s)
                for b, s in weighted_nms(boxes, scores, 0.3)
            ]
        )
        # Largest faces first: the main subject leads, distant bystanders come last.
        merged.sort(key=lambda f: f.w * f.h, reverse=True)
        return merged[:MAX_FACES]


def drop_group_boxes(faces: list[FaceBox]) -> list[FaceBox]:
    """Drop boxes that contain the centres of two or more other faces.

    On group photos the short-range model can return one large box around
    several people; such a box is not a face.
    """

    def contains(outer: FaceBox, inner: FaceBox) -> bool:
        cx, cy = inner.x + inner.w / 2, inner.y + inner.h / 2
        return outer.x <= cx <= outer.x + outer.w and outer.y <= cy <= outer.y + outer.h

    return [f for f in faces if sum(contains(f, g) for g in faces if g is not f) < 2]


def square_region(width: int, height: int, box: FaceBox | None, margin: float) -> tuple[int, int, int, int]:
    """The square crop around a face (or the centre square), kept inside the image.

    Shifting rather than padding keeps every crop made of real pixels, so no
    source is recognisable by black borders.
    """
    limit = min(width, height)
    if box is None:
        side, cx, cy = limit, width / 2, height / 2
    else:
        side = min(limit, max(box.w, box.h) * (1 + 2 * margin))
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
    side = max(1, round(side))
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, x0 + side, y0 + side


def crop_face(image: Image.Image, box: FaceBox | None, size: int, margin: float) -> np.ndarray:
    region = square_region(image.width, image.height, box, margin)
    return np.asarray(image.resize((size, size), Image.BICUBIC, box=region), dtype=np.uint8)


def _crop(decoded: DecodedImage, box: FaceBox | None, size: int, margin: float, scale: str = RESIZED) -> np.ndarray:
    """The face's square crop at ``size``, from pixels decoded at a scale that needs no enlarging where possible.

    ``native``: the centre ``size`` x ``size`` pixels of the square at full resolution, not resampled
    (the square resized up to ``size`` only where it is smaller).
    """
    region = square_region(decoded.width, decoded.height, box, margin)
    side = region[2] - region[0]
    if scale == NATIVE and side >= size:
        full = decoded.at_least(1.0)
        image = full.image
        cx, cy = (region[0] + region[2]) / 2, (region[1] + region[3]) / 2
        x0 = int(round(min(max(cx - size / 2, 0), image.width - size)))
        y0 = int(round(min(max(cy - size / 2, 0), image.height - size)))
        return np.asarray(image.crop((x0, y0, x0 + size, y0 + size)), dtype=np.uint8)
    source = decoded.at_least(size / side)
    s = source.scale
    scaled = tuple(v * s for v in region)
    return np.asarray(source.image.resize((size, size), Image.BICUBIC, box=scaled), dtype=np.uint8)


def _full_size(box: FaceBox, scale: float) -> FaceBox:
    return FaceBox(box.x / scale, box.y / scale, box.w / scale, box.h / scale, box.score)


def prepare(
    image: Image.Image | DecodedImage,
    finder: FaceFinder,
    size: int = DEFAULT_INPUT_SIZE,
    margin: float = DEFAULT_MARGIN,
    max_faces: int = MAX_FACES,
    scale: str = RESIZED,
    also: tuple[CropSpec, ...] = (),
) -> PreparedImage:
    """Faces of an RGB image, cropped and resized for the classifier; boxes in pixels of the full picture.

    ``also``: further ways to cut the same faces, for other models (each crop's ``views``).
    """
    if isinstance(image, Image.Image):
        image = DecodedImage(image, image.width, image.height)
    found = finder(image.working)[:max_faces]
    if image.working.width != image.width:
        found = [_full_size(f, image.working.width / image.width) for f in found]
    crops = [
        FaceCrop(f, _crop(image, f, size, margin, scale), {s: _crop(image, f, s.size, s.margin, s.scale) for s in also})
        for f in found or [None]
    ]
    return PreparedImage(image.width, image.height, crops)
