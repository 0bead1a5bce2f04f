"""Per-face crops and heatmaps, made on first view and kept beside the upload."""

from __future__ import annotations

import threading

from django.core.files.base import ContentFile

from ..ml.explain import crop_png, overlay_png
from ..models import Detection
from ..uploads import decode_stored
from .inference import get_detector

KINDS = ("crop", "heatmap")
_lock = threading.Lock()


class ExplanationUnavailable(Exception):
    """No picture can be made for this face (no such face, or analysed by another model)."""


def face_file_name(detection: Detection, number: int, kind: str) -> str:
    return f"faces/{detection.pk}-{number}-{kind}.png"


def face_file_names(detection: Detection) -> list[str]:
    return [face_file_name(detection, n, kind) for n in range(1, len(detection.faces or []) + 1) for kind in KINDS]


def face_image(detection: Detection, number: int, kind: str) -> str:
    """The storage name of a face's crop or heatmap, generating those of every face if missing."""
    if kind not in KINDS or not 1 <= number <= len(detection.faces or []):
        raise ExplanationUnavailable("no such face")
    name = face_file_name(detection, number, kind)
    storage = detection.image.storage
    with _lock:
        if not storage.exists(name):
            _generate(detection)
    return name


def _generate(detection: Detection) -> None:
    detector = get_detector()
    if detection.model_version != detector.version:
        raise ExplanationUnavailable(
            f"analysed by model {detection.model_version}; the loaded model is {detector.version}"
        )
    with detection.image.open("rb") as f:
        prepared = detector.prepare(decode_stored(f.read()))  # decoded as for the verdict: the same faces
    if len(prepared.crops) != len(detection.faces):
        raise ExplanationUnavailable("the faces found now differ from those judged")
    maps = detector.heatmaps(prepared)
    storage = detection.image.storage
    for number, (crop, heat) in enumerate(zip(prepared.crops, maps, strict=True), start=1):
        for kind, data in (("crop", crop_png(crop.pixels)), ("heatmap", overlay_png(crop.pixels, heat))):
            name = face_file_name(detection, number, kind)
            if not storage.exists(name):
                storage.save(name, ContentFile(data))
