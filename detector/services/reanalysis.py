"""Re-analysing past uploads with a model version: which uploads, one at a time, and how far it has gone.

A :class:`~detector.models.Reanalysis` row records the batch and its progress (the admin shows
it). Each upload is analysed by the version and kept as that version's analysis
(:func:`.analysis.analyse` with ``current=False``); where the version is the active one, the
analysis then becomes the upload's verdict (:func:`.analysis.adopt`), and a failure leaves the
verdict shown as it was. An upload the version has analysed already is neither queued again nor
analysed twice. Where the batch runs (here, or on the workers) is :mod:`detector.dispatch`'s choice.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from django.db.models import F
from django.utils import timezone

from ..ml.inference.bundle import BundleError
from ..models import Analysis, Detection, Reanalysis, Status
from . import analysis, registry
from .inference import detector_for, get_detector

log = logging.getLogger(__name__)

FINISHED = (Status.DONE, Status.FAILED)


def plan(
    path: Path | str | None = None,
    since: date | None = None,
    label: str = "",
    detections=None,
    user=None,
) -> tuple[Reanalysis, list[str]]:
    """Record a batch: the finished uploads (of ``detections``, default all) uploaded on or after ``since`` and
    labelled ``label``, less those the version (the bundle at ``path``, default the active one) has analysed.
    Raises BundleError where the bundle cannot serve."""
    path = Path(path) if path else registry.active_path()
    found = registry.describe(path)
    if found.error:
        raise BundleError(found.error)
    chosen = (Detection.objects.all() if detections is None else detections).filter(status__in=FINISHED)
    words = []
    if since:
        chosen = chosen.filter(created_at__date__gte=since)
        words.append(f"uploaded since {since.isoformat()}")
    if label:
        chosen = chosen.filter(label=label)
        words.append(f"labelled {label}")
    if detections is not None:
        words.append("chosen in the admin")
    done_by_it = Analysis.objects.by_version(found.version).filter(status=Status.DONE).values("detection")
    ids = [str(pk) for pk in chosen.exclude(pk__in=done_by_it).order_by("created_at").values_list("pk", flat=True)]
    run = Reanalysis.objects.create(
        bundle=str(path),
        name=found.name,
        version=found.version,
        criteria=", ".join(words) or "every finished upload",
        requested_by=user,
        total=len(ids),
        finished_at=None if ids else timezone.now(),
    )
    log.info("re-analysis %s: %d uploads for %s %s", run.pk, len(ids), found.name, found.version)
    return run, ids


def count(run_id: int, outcome: str) -> None:
    """One more upload of the batch handled (``analysed``, ``failed`` or ``skipped``); the batch finishes with
    its last."""
    Reanalysis.objects.filter(pk=run_id).update(**{outcome: F(outcome) + 1})
    finish_if_done(run_id)


def finish_if_done(run_id: int) -> None:
    Reanalysis.objects.filter(
        pk=run_id, finished_at__isnull=True, total__lte=F("analysed") + F("failed") + F("skipped")
    ).update(finished_at=timezone.now())


def reanalyse_one(run_id: int, detection_id: str) -> str:
    """Analyse one upload of a batch by its version; returns what became of it (as :func:`count` counts it).

    A missing model, unreadable storage or an unavailable database is raised for the caller to retry."""
    run = Reanalysis.objects.get(pk=run_id)
    detection = Detection.objects.filter(pk=detection_id, status__in=FINISHED).first()
    if (
        detection is None
        or Analysis.objects.filter(detection=detection, model_version=run.version, status=Status.DONE).exists()
    ):
        count(run_id, "skipped")
        return "skipped"
    detector = detector_for(run.bundle)
    if detector.version != run.version:
        raise BundleError(f"{run.bundle} is now version {detector.version}, not {run.version}")
    analysis.analyse(detection, detector=detector, current=False)
    found = Analysis.objects.select_related("detection").get(detection_id=detection_id, model_version=run.version)
    if found.status == Status.DONE and run.version == get_detector().version:
        analysis.adopt(found)
    outcome = "analysed" if found.status == Status.DONE else "failed"
    count(run_id, outcome)
    return outcome
