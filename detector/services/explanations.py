"""Per-face crops and heatmaps, made on first view and kept beside the upload."""

from __future__ import annotations

import logging
import threading

from django.core.files.base import ContentFile

from ..ml.inference.explain import crop_png, overlay_png
from ..models import Detection
from ..uploads import decode_stored
from .inference import get_detector

log = logging.getLogger(__name__)
KINDS = ("crop", "heatmap")
_lock = threading.Lock()


class ExplanationUnavailable(Exception):
    """No picture can be made for this face (no such face, or analysed by another model)."""


def face_file_name(detection: Detection, number: int, kind: str) -> str:
    return f"faces/{detection.pk}-{number}-{kind}.png"


def face_file_names(detection: Detection) -> list[str]:
    return [face_file_name(detection, n, kind) for n in range(1, len(detection.faces or []) + 1) for kind in KINDS]


def face_image(detection: Detection, number: int, kind: str) -> bytes:
    """A face's crop or heatmap as PNG: the stored one, or, the first time, those of every face drawn and kept.

    Where they cannot be kept (a full or read-only disk) the one asked for is served all the same, and drawn
    again next time. Raises OSError only where the stored picture cannot be read."""
    if kind not in KINDS or not 1 <= number <= len(detection.faces or []):
        raise ExplanationUnavailable("no such face")
    name = face_file_name(detection, number, kind)
    storage = detection.image.storage
    with _lock:
        if storage.exists(name):
            with storage.open(name, "rb") as f:
                return f.read()
        drawn = _draw(detection)
        _keep(detection, drawn)
    if name not in drawn:
        raise ExplanationUnavailable("the model that judged this face draws no heatmaps")
    return drawn[name]


def _draw(detection: Detection) -> dict[str, bytes]:
    """Every face's crop and heatmap (where the model draws one), by storage name."""
    detector = get_detector()
    if detection.model_version != detector.version:
        raise ExplanationUnavailable(
            f"analysed by model {detection.model_version}; the loaded model is {detector.version}"
        )
    with detection.image.open("rb") as f:
        prepared = detector.prepare(decode_stored(f.read()))  # decoded as for the verdict: the same faces
    if len(prepared.crops) != len(detection.faces):
        raise ExplanationUnavailable("the faces found now differ from those judged")
    # A head on CLIP features has no map of the face: its crops only.
    maps = detector.heatmaps(prepared) if getattr(detector, "draws_heatmaps", True) else [None] * len(prepared.crops)
    drawn = {}
    for number, (crop, heat) in enumerate(zip(prepared.crops, maps, strict=True), start=1):
        drawn[face_file_name(detection, number, "crop")] = crop_png(crop.pixels)
        if heat is not None:
            drawn[face_file_name(detection, number, "heatmap")] = overlay_png(crop.pixels, heat)
    return drawn


def _keep(detection: Detection, drawn: dict[str, bytes]) -> None:
    """Store the pictures drawn, as far as the storage lets; none where the upload was deleted meanwhile."""
    storage, kept = detection.image.storage, []
    try:
        for name, data in drawn.items():
            if not storage.exists(name):
                kept.append(storage.save(name, ContentFile(data)))
    except OSError as exc:  # a full or read-only disk: served unstored, kept once there is room again
        log.warning("face pictures of %s drawn but not kept: %s", detection.pk, exc)
    if kept and not Detection.objects.filter(pk=detection.pk).exists():
        for name in kept:
            storage.delete(name)
