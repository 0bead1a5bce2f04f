"""Reviewed uploads as a training set: only where the operator allows it, without metadata or owners.

``DETECTOR_REVIEWED_FOR_TRAINING`` (off by default, and then said on the upload page) allows it.
Each upload a reviewer marked real or fake, with a face the detector judged, is written as a PNG
of its upright pixels (so nothing of the file's metadata, EXIF GPS included, goes along), under
a name made from its pixels, in the layout of the training datasets (``manifest.csv`` with
``path,label,source,kind,group,split,resized,sha256``; source and kind ``reviewed``, the
reviewer's label). Near-identical uploads (the same bytes, or perceptual hashes at most
:data:`.sightings.NEAR` bits apart) form one group, and a group's split is drawn from its key's
hash, so copies of one picture never straddle train and test, and a group keeps its split from
one export to the next. Nothing of the owner, the file name, the row or the review note is
written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from ..ml.inference.preprocessing import decode_image
from ..models import Detection, Kind, ReviewVerdict, Status
from .sightings import NEAR, distance

SOURCE = "reviewed"
SHARES = (("train", 0.70), ("val", 0.15), ("test", 0.15))
COLUMNS = ("path", "label", "source", "kind", "group", "split", "resized", "sha256")


class ExportRefused(Exception):
    """The export is not allowed, or its folder is in the way; nothing was written."""


@dataclass
class Exported:
    folder: Path
    by_split: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> {real: n, fake: n}
    groups: int = 0
    unreadable: int = 0

    @property
    def images(self) -> int:
        return sum(sum(c.values()) for c in self.by_split.values())


def reviewed_uploads():
    """The uploads that can teach a face model: images, judged on a face, marked real or fake by a reviewer."""
    return Detection.objects.filter(
        kind=Kind.IMAGE,
        status=Status.DONE,
        face_found=True,
        review_verdict__in=(ReviewVerdict.REAL, ReviewVerdict.FAKE),
    ).order_by("created_at")


def groups_of(rows: list[tuple[str, str]]) -> list[int]:
    """For each (sha256, phash), the index of its group: near-identical ones share one (union-find)."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (sha_i, ph_i) in enumerate(rows):
        for j in range(i):
            sha_j, ph_j = rows[j]
            if sha_i == sha_j or (ph_i and ph_j and distance(ph_i, ph_j) <= NEAR):
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(rows))]


def split_of(key: str) -> str:
    """A group's split, from its key's hash: the same on every export."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(1 << 48)
    edge = 0.0
    for name, share in SHARES:
        edge += share
        if u < edge:
            return name
    return SHARES[-1][0]


def export(out: Path) -> Exported:
    """Write the reviewed uploads to ``out`` (a new or empty folder); ExportRefused where not allowed."""
    if not settings.DETECTOR_REVIEWED_FOR_TRAINING:
        raise ExportRefused(
            "reviewed uploads are not used for training here: the operator has not set DETECTOR_REVIEWED_FOR_TRAINING"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportRefused(f"{out} exists and is not an empty folder")
    rows = list(reviewed_uploads().values_list("pk", "sha256", "phash", "review_verdict", "image"))
    group_index = groups_of([(sha, ph) for _, sha, ph, _, _ in rows])
    # A group's key: the smallest sha256 among its uploads, so that it does not depend on the order of the rows.
    keys: dict[int, str] = {}
    for (_, sha, _, _, _), g in zip(rows, group_index, strict=True):
        keys[g] = min(keys.get(g, sha), sha)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    found = Exported(out, groups=len(keys))
    lines, written = [], set()
    storage = Detection._meta.get_field("image").storage
    for (_, _, _, verdict, name), g in zip(rows, group_index, strict=True):
        label = "fake" if verdict == ReviewVerdict.FAKE else "real"
        split = split_of(keys[g])
        try:
            with storage.open(name, "rb") as f:
                pixels = decode_image(f.read(), settings.DETECTOR_MAX_PIXELS)
        except (OSError, ValueError):
            found.unreadable += 1
            continue
        buf = io.BytesIO()
        pixels.save(buf, "PNG")  # pixels only: no EXIF, XMP, ICC or text chunks
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        if digest in written:  # the very same pixels twice: once is enough
            continue
        written.add(digest)
        path = Path(split) / label / f"{SOURCE}__{digest[:20]}.png"
        (partial / path.parent).mkdir(parents=True, exist_ok=True)
        (partial / path).write_bytes(data)
        lines.append(
            {
                "path": path.as_posix(),
                "label": label,
                "source": SOURCE,
                "kind": SOURCE,
                "group": f"{SOURCE}:{keys[g][:16]}",
                "split": split,
                "resized": "no",
                "sha256": digest,
            }
        )
        counts = found.by_split.setdefault(split, {"real": 0, "fake": 0})
        counts[label] += 1
    partial.mkdir(parents=True, exist_ok=True)
    with open(partial / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
    if out.exists():
        out.rmdir()
    os.replace(partial, out)  # the folder appears whole, or not at all
    return found
