"""Storing uploads and their verdicts: files first, then the row, never one without the other."""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from ..ml.bundle import LABEL_FAKE, LABEL_REAL, LABEL_UNCERTAIN
from ..models import ANONYMOUS_OWNER_KEY, Detection, Label, Status
from ..uploads import CheckedImage, derived_jpegs
from .explanations import face_file_names
from .inference import get_detector

log = logging.getLogger(__name__)
PREVIEW_SIDE, THUMB_SIDE = 1280, 256
MAX_NAME = Detection._meta.get_field("original_name").max_length
LABELS = {LABEL_REAL: Label.REAL, LABEL_FAKE: Label.DEEPFAKE, LABEL_UNCERTAIN: Label.UNCERTAIN}
# What a client is told when an upload cannot be taken at all; either way nothing is kept.
DETECTOR_DOWN = "The detector is not available right now; nothing was stored. Please try again later."
STORAGE_FAILED = "The upload could not be stored (file storage unavailable); nothing was kept."


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


def store_upload(checked: CheckedImage, original_name: str, request) -> Detection:
    """Save the original bytes and re-encoded copies, then the pending row; undo the files if the row fails."""
    detection = Detection(
        original_name=display_name(original_name),
        sha256=checked.sha256,
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
        preview, thumbnail = derived_jpegs(checked.image, (PREVIEW_SIDE, THUMB_SIDE))
        detection.image.save(f"{name}.{checked.extension}", ContentFile(checked.data), save=False)
        detection.preview.save(f"{name}.jpg", ContentFile(preview), save=False)
        detection.thumbnail.save(f"{name}.jpg", ContentFile(thumbnail), save=False)
        with transaction.atomic():
            detection.save(force_insert=True)
    except BaseException:
        delete_files(detection)
        raise
    return detection


def analyse(detection: Detection, image=None) -> Detection:
    """Run the detector and record the verdict, or the failure and its reason.

    A missing model (DetectorUnavailable) or unreadable storage (OSError) is
    raised, not recorded: for a worker they are transient, and the job is retried.
    """
    detector = get_detector()
    data = None
    if image is None:
        with detection.image.open("rb") as f:
            data = f.read()
    started = time.perf_counter()
    try:
        verdict = detector.analyse(image) if image is not None else detector.analyse_file(data)
    except Exception as exc:  # anything wrong with this image (or a time limit) is recorded, never a 500
        log.exception("analysis of %s failed", detection.id)
        detection.status = Status.FAILED
        detection.label = Label.NO_VERDICT
        detection.error_message = f"The image could not be analysed: {exc}"[:1000]
    else:
        detection.status = Status.DONE
        detection.label = LABELS[verdict.label]
        detection.fake_probability = verdict.fake_probability
        detection.confidence = verdict.confidence
        detection.threshold = verdict.threshold
        detection.model_version = verdict.model_version
        detection.face_found = verdict.face_found
        detection.faces = [{"box": f.box, "fake_probability": f.fake_probability} for f in verdict.faces]
        detection.error_message = ""
    detection.processing_ms = round((time.perf_counter() - started) * 1000)
    detection.save()
    return detection


def enqueue(detection: Detection, image=None) -> Detection:
    """Have the detection analysed: here and now without a broker, else by a worker once the row is committed."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        detection.attempts += 1
        return analyse(detection, image)
    from ..tasks import analyse_detection

    pk = str(detection.pk)
    transaction.on_commit(lambda: analyse_detection.delay(pk))
    return detection


def submit(checked: CheckedImage, original_name: str, request) -> Detection:
    """The upload flow every caller goes through (form, batch, API): store, then analyse or queue."""
    return enqueue(store_upload(checked, original_name, request), checked.image)


def claim(detection_id: str, new_attempt: bool = True) -> Detection | None:
    """Take an unfinished detection for analysis; None when it is gone, finished, or has failed too often.

    Each delivery of a job counts as an attempt, so a job that kills its worker
    every time ends as failed after ``DETECTOR_TASK_MAX_ATTEMPTS`` instead of looping.
    """
    with transaction.atomic():
        detection = Detection.objects.select_for_update().filter(pk=detection_id).first()
        if detection is None or detection.status not in Status.unfinished():
            return None
        if new_attempt:
            detection.attempts += 1
        if detection.attempts > settings.DETECTOR_TASK_MAX_ATTEMPTS:
            fail(detection, f"The analysis stopped {detection.attempts - 1} times; please upload the image again.")
            return None
        detection.status = Status.ANALYSING
        detection.save(update_fields=["status", "attempts"])
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
