"""Storing uploads and their verdicts: files first, then the row, never one without the other."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F

from ..models import ANONYMOUS_OWNER_KEY, Detection, Label, Status
from ..uploads import CheckedImage, derived_jpegs
from .explanations import face_file_names

PREVIEW_SIDE, THUMB_SIDE = 1280, 256
MAX_NAME = Detection._meta.get_field("original_name").max_length


def display_name(name: str) -> str:
    """The client's file name as harmless display text of bounded length."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:MAX_NAME]


def _owner_fields(request) -> dict:
    if request.user.is_authenticated:
        return {"owner": request.user}
    token = request.session.setdefault(ANONYMOUS_OWNER_KEY, uuid.uuid4().hex)
    return {"anonymous_owner": token}


def perceptual_hash(image) -> str:
    """The image's 64-bit perceptual hash (DCT of a 32 px grey copy; imagehash), in hex: near-identical images,
    re-encoded, rescaled or slightly recoloured, differ in few of its bits."""
    import imagehash

    return str(imagehash.phash(image))


def store_upload(checked: CheckedImage, original_name: str, request) -> Detection:
    """Save the original bytes and re-encoded copies, then the pending row; undo the files if the row fails."""
    detection = Detection(
        original_name=display_name(original_name),
        sha256=checked.sha256,
        phash=perceptual_hash(checked.decoded.working),
        image_format=checked.format,
        content_type=checked.content_type,
        size_bytes=len(checked.data),
        width=checked.width,
        height=checked.height,
        status=Status.PENDING,
        **_owner_fields(request),
    )
    name = str(detection.id)
    try:
        preview, thumbnail = derived_jpegs(checked.decoded.working, (PREVIEW_SIDE, THUMB_SIDE))
        detection.image.save(f"{name}.{checked.extension}", ContentFile(checked.data), save=False)
        detection.preview.save(f"{name}.jpg", ContentFile(preview), save=False)
        detection.thumbnail.save(f"{name}.jpg", ContentFile(thumbnail), save=False)
        with transaction.atomic():
            detection.save(force_insert=True)
    except BaseException:
        delete_files(detection)
        raise
    return detection


def claim(detection: Detection | str, new_attempt: bool = True) -> Detection | None:
    """Take an unfinished detection (a row, or its id) for analysis; None when it is gone, finished, or has
    failed too often.

    One conditional UPDATE. Each delivery of a job (and each analysis in the request) counts as an attempt, here
    and only here, so a job that kills its worker every time ends as failed after ``DETECTOR_TASK_MAX_ATTEMPTS``
    instead of looping. A retry of the same delivery (``new_attempt=False``) does not count.
    """
    pk = getattr(detection, "pk", detection)
    unfinished = Detection.objects.filter(pk=pk, status__in=Status.unfinished())
    if new_attempt:
        allowed = unfinished.filter(attempts__lt=settings.DETECTOR_TASK_MAX_ATTEMPTS)
        taken = allowed.update(status=Status.ANALYSING, attempts=F("attempts") + 1)
    else:
        taken = unfinished.update(status=Status.ANALYSING)
    if not taken:
        out_of_attempts = unfinished.first()
        if out_of_attempts is not None:
            fail(
                out_of_attempts,
                f"The analysis stopped {out_of_attempts.attempts} times; please upload the image again.",
            )
        return None
    if not isinstance(detection, Detection):
        return Detection.objects.filter(pk=pk).first()
    detection.status, detection.attempts = Status.ANALYSING, detection.attempts + int(new_attempt)
    return detection


def fail(detection: Detection, message: str) -> None:
    """Record that no verdict will come, and why."""
    detection.status, detection.label, detection.error_message = Status.FAILED, Label.NO_VERDICT, message[:1000]
    detection.save(update_fields=["status", "label", "error_message", "attempts"])


def stored_names(detection: Detection) -> list[str]:
    """The upload, its copies and any face crops and heatmaps made from it."""
    names = [f.name for f in (detection.image, detection.preview, detection.thumbnail) if f.name]
    return names + face_file_names(detection)


def delete_files(detection: Detection, names: list[str] | None = None) -> None:
    storage = detection.image.storage
    for name in stored_names(detection) if names is None else names:
        storage.delete(name)


def delete_detection(detection: Detection) -> None:
    """Delete the row, then its files once the deletion is committed."""
    names = stored_names(detection)  # before delete() clears the primary key
    with transaction.atomic():
        detection.delete()
        transaction.on_commit(lambda: delete_files(detection, names))
