"""The one preprocessing path used by training, evaluation and serving.

decode (EXIF orientation, RGB) -> find faces -> square crop with a fixed margin
around each face -> resize to the model's input size.  Where no face is found
the centre square of the whole image is used, and that is recorded.  Pixel
scaling happens inside the model, so the arrays here stay uint8.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from .faces import BlazeFaceDetector, FaceBox, weighted_nms

PREPROCESSING_VERSION = 1
DEFAULT_INPUT_SIZE = 224
DEFAULT_MARGIN = 0.2
MAX_FACES = 8
MIN_FACE_PIXELS = 16


class ImageDecodeError(ValueError):
    """The bytes are not an image this platform can read."""


@dataclass
class FaceCrop:
    box: FaceBox | None  # None: the centre-square fallback
    pixels: np.ndarray  # (size, size, 3) uint8


@dataclass
class PreparedImage:
    width: int
    height: int
    crops: list[FaceCrop] = field(default_factory=list)

    @property
    def face_found(self) -> bool:
        return bool(self.crops) and self.crops[0].box is not None

    def batch(self) -> np.ndarray:
        return np.stack([c.pixels for c in self.crops])


def decode_image(data: bytes | str, max_pixels: int | None = None) -> Image.Image:
    """Decode bytes or a path into an upright RGB image; raises ImageDecodeError."""
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                if max_pixels and im.width * im.height > max_pixels:
                    raise ImageDecodeError(f"image has {im.width * im.height} pixels, more than {max_pixels}")
                im.load()
                im = ImageOps.exif_transpose(im)
                return im.convert("RGB")
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc


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


def prepare(
    image: Image.Image,
    finder: FaceFinder,
    size: int = DEFAULT_INPUT_SIZE,
    margin: float = DEFAULT_MARGIN,
    max_faces: int = MAX_FACES,
) -> PreparedImage:
    """Faces of an RGB image, cropped and resized for the classifier."""
    faces = finder(image)[:max_faces] or [None]
    crops = [FaceCrop(f, crop_face(image, f, size, margin)) for f in faces]
    return PreparedImage(image.width, image.height, crops)
