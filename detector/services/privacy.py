"""What people can do with their own data: take it with them, or delete it with their account."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator

from django.db import transaction

from ..models import VERDICT_FIELDS, Detection
from .detections import stored_names

EXPORT_FIELDS = (
    "id",
    "created_at",
    "original_name",
    "sha256",
    "image_format",
    "width",
    "height",
    "kind",
    "duration_seconds",
    *VERDICT_FIELDS,
)
EXPORT_FIELDS += ("review_verdict", "review_note")
CHUNK = 256 * 1024


def delete_account(user) -> int:
    """Delete the user, every detection they own and every file made from those, in one transaction (the files
    once it is committed). Returns the number of detections deleted. The rows are read under the lock an analysis
    in flight takes to record its verdict, so its stills are named too (see ``detections.delete_detection``)."""
    storage = Detection._meta.get_field("image").storage
    with transaction.atomic():
        detections = list(Detection.objects.select_for_update().filter(owner=user))
        names = [name for detection in detections for name in stored_names(detection)]
        Detection.objects.filter(pk__in=[d.pk for d in detections]).delete()
        user.delete()
        transaction.on_commit(lambda: [storage.delete(name) for name in names])
    return len(detections)


def export_record(detection: Detection) -> dict:
    record = {name: getattr(detection, name) for name in EXPORT_FIELDS}
    record.update(id=str(detection.pk), created_at=detection.created_at.isoformat(), original=original_name(detection))
    return record


def original_name(detection: Detection) -> str:
    return f"originals/{detection.pk}.{detection.image.name.rsplit('.', 1)[-1]}"


class _Sink:
    """A write-only file for ``zipfile`` whose bytes are taken as they come, so the archive streams."""

    def __init__(self):
        self._parts, self._size = [], 0

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def tell(self) -> int:
        return self._size

    def flush(self):
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def export_zip(detections) -> Iterator[bytes]:
    """A ZIP of ``checks.json`` (every detection: file, verdict, faces, review) and each original as uploaded,
    produced piece by piece: the whole archive is never held in memory. An original that cannot be read is noted
    in the JSON rather than breaking the download."""
    sink = _Sink()
    records = []
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for detection in detections:
            record = export_record(detection)
            try:
                with detection.image.open("rb") as source, archive.open(record["original"], "w") as target:
                    while chunk := source.read(CHUNK):
                        target.write(chunk)
                        yield sink.take()
            except OSError:
                record["original"] = None
            records.append(record)
            yield sink.take()
        archive.writestr("checks.json", json.dumps(records, indent=2, default=str), zipfile.ZIP_DEFLATED)
    yield sink.take()
