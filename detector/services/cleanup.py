"""Repairs after crashes: orphan files, rows without their file, detections stuck unfinished.

It returns what it found; queueing the stuck detections again is its callers' (``dispatch.requeue``, the sweep).

A repair must never do more harm than the crash it repairs: an unmounted or emptied media folder makes every row
look as if it had lost its file, and a database that is not the right one makes every file look orphaned. So it
removes nothing of a kind where all it checked looks lost, nor more than ``DETECTOR_CLEANUP_MAX_REMOVALS`` of a
kind in one run, unless forced (``cleanup_detections --force``; beat's sweep never forces), and says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from ..models import Detection, Kind, Status
from .detections import delete_detection, delete_files, fail, stored_names

log = logging.getLogger(__name__)
FOLDERS = ("uploads", "previews", "thumbnails", "faces", "stills")


@dataclass
class CleanupReport:
    orphan_files: list[str] = field(default_factory=list)
    rows_without_file: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)  # unfinished past the grace period: for the caller to queue
    marked_failed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why files or rows that looked lost were left alone
    expired: list[str] = field(default_factory=list)  # deleted, with their files, past DETECTOR_RETENTION_DAYS


def _too_many(kind: str, found: int, checked: int, force: bool, all_lost_is_suspect: bool = True) -> str | None:
    """Why removing ``found`` of the ``checked`` items of a kind would be unsafe; None where it is not."""
    if force or not found:
        return None
    if found == checked and all_lost_is_suspect:
        return (
            f"every one of the {checked} {kind} checked looks lost: the media storage may be unmounted or empty, "
            "or this may be the wrong database; nothing of them was removed (--force to remove them anyway)"
        )
    if found > settings.DETECTOR_CLEANUP_MAX_REMOVALS:
        return (
            f"{found} {kind} look lost, more than the {settings.DETECTOR_CLEANUP_MAX_REMOVALS} one run removes "
            "(DETECTOR_CLEANUP_MAX_REMOVALS); nothing of them was removed (--force to remove them anyway)"
        )
    return None


def _files_older_than(folder: str, cutoff) -> list[str]:
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    names = [f"{folder}/{name}" for name in files]
    return [n for n in names if default_storage.get_modified_time(n) < cutoff]


def cleanup(
    grace: timedelta = timedelta(minutes=15), dry_run: bool = False, reanalyse: bool = True, force: bool = False
) -> CleanupReport:
    """Safe at any time: it only touches files and rows older than ``grace``, and no more than a bound of them.

    Files are written before their row is committed, so a young file without a
    row may belong to an upload in progress; the grace period leaves those alone.
    Stuck detections are reported for analysis again, or (``reanalyse=False``) marked failed.
    """
    report = CleanupReport()
    if settings.DETECTOR_RETENTION_DAYS:
        kept_from = timezone.now() - timedelta(days=settings.DETECTOR_RETENTION_DAYS)
        for detection in Detection.objects.filter(created_at__lt=kept_from):
            report.expired.append(str(detection.pk))
            if not dry_run:
                delete_detection(detection)
    cutoff = timezone.now() - grace
    known = set()
    for detection in Detection.objects.prefetch_related("analyses").iterator(chunk_size=500):
        known.update(stored_names(detection))
    old_files = [name for folder in FOLDERS for name in _files_older_than(folder, cutoff)]
    orphans = [name for name in old_files if name not in known]
    # Files no row knows are expected where there are no rows at all; where there are rows, all of them is suspect.
    why = _too_many("files", len(orphans), len(old_files), force, all_lost_is_suspect=bool(known))
    if why:
        report.refused.append(why)
    else:
        report.orphan_files = orphans
        if not dry_run:
            for name in orphans:
                default_storage.delete(name)

    old_rows = list(Detection.objects.filter(created_at__lt=cutoff))
    lost = [d for d in old_rows if not default_storage.exists(d.image.name)]
    why = _too_many("rows", len(lost), len(old_rows), force)
    if why:
        report.refused.append(why)
    else:
        report.rows_without_file = [str(d.pk) for d in lost]
        if not dry_run:
            for detection in lost:
                delete_files(detection)
                detection.delete()

    # A video whose analysis moved recently is under way, however long ago it was uploaded.
    moving = timezone.now() - timedelta(minutes=settings.DETECTOR_VIDEO_STALLED_MINUTES)
    unfinished = Detection.objects.filter(status__in=Status.unfinished(), created_at__lt=cutoff).exclude(
        kind=Kind.VIDEO, status=Status.ANALYSING, progress_at__gte=moving
    )
    for detection in unfinished:
        if reanalyse:
            report.stuck.append(str(detection.pk))
            continue
        if not dry_run:
            fail(detection, "The analysis was interrupted; please upload the file again.")
        report.marked_failed.append(str(detection.pk))
    for why in report.refused:
        log.warning("cleanup: %s", why)
    return report
