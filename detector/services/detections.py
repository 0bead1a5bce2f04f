"""Storing uploads and their verdicts: files first, then the row, never one without the other."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import ANONYMOUS_OWNER_KEY, Detection, Kind, Label, Status
from ..uploads import CheckedImage, CheckedVideo, derived_jpegs
from . import webhooks
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


def store_upload(checked: CheckedImage | CheckedVideo, original_name: str, request, source_url: str = "") -> Detection:
    """Save the original bytes and re-encoded copies, then the pending row; undo the files if the row fails.

    A video's original is streamed to storage as it came; its preview and thumbnail are its first frame.
    """
    video = isinstance(checked, CheckedVideo)
    detection = Detection(
        original_name=display_name(original_name),
        source_url=source_url,
        sha256=checked.sha256,
        # A video's first frame is no fingerprint of the video: its earlier sightings are by its bytes only.
        phash="" if video else perceptual_hash(checked.decoded.working),
        image_format=checked.format,
        content_type=checked.content_type,
        size_bytes=checked.size if video else len(checked.data),
        width=checked.width,
        height=checked.height,
        kind=Kind.VIDEO if video else Kind.IMAGE,
        duration_seconds=checked.info.duration if video else None,
        status=Status.PENDING,
        **_owner_fields(request),
    )
    name = str(detection.id)
    try:
        still = checked.info.first_frame if video else checked.decoded.working
        preview, thumbnail = derived_jpegs(still, (PREVIEW_SIDE, THUMB_SIDE))
        original = File(checked.file) if video else ContentFile(checked.data)
        detection.image.save(f"{name}.{checked.extension}", original, save=False)
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
    A video being analysed whose progress moved within ``DETECTOR_VIDEO_STALLED_MINUTES`` is not taken: a long
    video is analysed once, never twice at the same time.
    """
    pk = getattr(detection, "pk", detection)
    now = timezone.now()
    stalled = now - timedelta(minutes=settings.DETECTOR_VIDEO_STALLED_MINUTES)
    unfinished = Detection.objects.filter(pk=pk, status__in=Status.unfinished()).exclude(
        kind=Kind.VIDEO, status=Status.ANALYSING, progress_at__gte=stalled
    )
    if new_attempt:
        allowed = unfinished.filter(attempts__lt=settings.DETECTOR_TASK_MAX_ATTEMPTS)
        taken = allowed.update(status=Status.ANALYSING, attempts=F("attempts") + 1, progress_at=now)
    else:
        taken = unfinished.update(status=Status.ANALYSING, progress_at=now)
    if not taken:
        out_of_attempts = unfinished.first()
        if out_of_attempts is not None:
            fail(
                out_of_attempts,
                f"The analysis stopped {out_of_attempts.attempts} times; please upload the file again.",
            )
        return None
    if not isinstance(detection, Detection):
        return Detection.objects.filter(pk=pk).first()
    detection.status, detection.attempts = Status.ANALYSING, detection.attempts + int(new_attempt)
    detection.progress_at = now
    return detection


def fail(detection: Detection, message: str) -> None:
    """Record that no verdict will come, and why (an update: a row deleted meanwhile stays deleted)."""
    detection.status, detection.label, detection.error_message = Status.FAILED, Label.NO_VERDICT, message[:1000]
    with transaction.atomic():
        if Detection.objects.filter(pk=detection.pk).update(
            status=detection.status, label=detection.label, error_message=detection.error_message
        ):
            webhooks.enqueue(detection)


def still_names(tracks: list[dict]) -> list[str]:
    """The stills (and their heatmaps) a video analysis's tracks name."""
    return [s[kind] for t in tracks or [] for s in t.get("stills", []) for kind in ("image", "heatmap") if s.get(kind)]


def stored_names(detection: Detection) -> list[str]:
    """The upload, its copies, any face crops and heatmaps made from it, and a video's stills (those of every
    model version's analysis)."""
    names = [f.name for f in (detection.image, detection.preview, detection.thumbnail) if f.name]
    stills = still_names(detection.tracks)
    if detection.is_video and not detection._state.adding:
        stills += [n for a in detection.analyses.all() for n in still_names(a.tracks)]
    return names + face_file_names(detection) + list(dict.fromkeys(stills))


def delete_files(detection: Detection, names: list[str] | None = None) -> None:
    storage = detection.image.storage
    for name in stored_names(detection) if names is None else names:
        storage.delete(name)


def delete_detection(detection: Detection) -> None:
    """Delete the row, then its files once the deletion is committed.

    The row is read again under the lock an analysis takes to record its verdict (``analysis.record``), so the
    files named are those of the verdict that stood last: an analysis finishing first has its stills deleted
    here, one finishing after finds no row, writes nothing and deletes what it wrote."""
    with transaction.atomic():
        current = Detection.objects.select_for_update().filter(pk=detection.pk).first()
        if current is None:
            return
        names = stored_names(current)  # before delete() clears the primary key
        current.delete()
        transaction.on_commit(lambda: delete_files(current, names))
