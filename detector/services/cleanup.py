"""Repairs after crashes: orphan files, rows without their file, detections stuck unfinished.

It returns what it found; queueing the stuck detections again is its callers' (``dispatch.requeue``, the sweep).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.files.storage import default_storage
from django.utils import timezone

from ..models import Detection, Status
from .detections import delete_files, fail, stored_names

log = logging.getLogger(__name__)
FOLDERS = ("uploads", "previews", "thumbnails", "faces")


@dataclass
class CleanupReport:
    orphan_files: list[str] = field(default_factory=list)
    rows_without_file: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)  # unfinished past the grace period: for the caller to queue
    marked_failed: list[str] = field(default_factory=list)


def _files_older_than(folder: str, cutoff) -> list[str]:
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    names = [f"{folder}/{name}" for name in files]
    return [n for n in names if default_storage.get_modified_time(n) < cutoff]


def cleanup(grace: timedelta = timedelta(minutes=15), dry_run: bool = False, reanalyse: bool = True) -> CleanupReport:
    """Safe at any time: it only touches files and rows older than ``grace``.

    Files are written before their row is committed, so a young file without a
    row may belong to an upload in progress; the grace period leaves those alone.
    Stuck detections are reported for analysis again, or (``reanalyse=False``) marked failed.
    """
    report = CleanupReport()
    cutoff = timezone.now() - grace
    known = set()
    for detection in Detection.objects.iterator():
        known.update(stored_names(detection))
    for folder in FOLDERS:
        for name in _files_older_than(folder, cutoff):
            if name not in known:
                report.orphan_files.append(name)
                if not dry_run:
                    default_storage.delete(name)

    for detection in Detection.objects.filter(created_at__lt=cutoff):
        if not default_storage.exists(detection.image.name):
            report.rows_without_file.append(str(detection.pk))
            if not dry_run:
                delete_files(detection)
                detection.delete()

    for detection in Detection.objects.filter(status__in=Status.unfinished(), created_at__lt=cutoff):
        if reanalyse:
            report.stuck.append(str(detection.pk))
            continue
        if not dry_run:
            fail(detection, "The analysis was interrupted; please upload the image again.")
        report.marked_failed.append(str(detection.pk))
    return report
