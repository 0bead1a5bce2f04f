"""Analysis jobs for Celery workers. They call the services; what queues them is ``dispatch``."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import DatabaseError

from .ml.inference.bundle import BundleError
from .models import Detection, Kind, Status
from .services import analysis, detections, reanalysis, webhooks
from .services.cleanup import cleanup
from .services.inference import DetectorUnavailable, load_service

log = logging.getLogger(__name__)
TRANSIENT = (OSError, DatabaseError, DetectorUnavailable)  # worth another try; a bad image is not


@worker_process_init.connect
def load_model(**kwargs):
    """Each worker process loads the model once, before its first job."""
    load_service()


@shared_task(bind=True, max_retries=4)
def analyse_detection(self, detection_id: str) -> str:
    """Analyse one stored upload; a detection already finished is left as it is (the job may come twice)."""
    return _analyse(self, detection_id)


@shared_task(
    bind=True,
    max_retries=2,
    acks_late=False,  # acknowledged when taken: the broker never hands a long video out twice; the sweep does
    soft_time_limit=settings.DETECTOR_VIDEO_TIME_LIMIT,
    time_limit=settings.DETECTOR_VIDEO_TIME_LIMIT + 30,
)
def analyse_video(self, detection_id: str) -> str:
    """Analyse one stored video (its own time limit; progress stored as it goes, see ``services.analysis``).

    Not redelivered by the broker: where a worker dies mid-video, the sweep takes it up once its progress has
    stood still for ``DETECTOR_VIDEO_STALLED_MINUTES``.
    """
    return _analyse(self, detection_id)


def _analyse(task, detection_id: str) -> str:
    try:
        detection = analysis.run(detection_id, new_attempt=task.request.retries == 0)
        if detection is None:
            return "skipped"
        kick_webhooks()
    except TRANSIENT as exc:
        if task.request.retries >= task.max_retries:
            log.error("giving up on detection %s: %s", detection_id, exc)
            unfinished = Detection.objects.filter(pk=detection_id, status__in=Status.unfinished()).first()
            if unfinished:
                detections.fail(unfinished, "The analysis service is unavailable; please upload the file again.")
            raise
        raise task.retry(exc=exc, countdown=min(60, 2 ** (task.request.retries + 1))) from exc
    return detection.status


@shared_task(bind=True, max_retries=4)
def reanalyse_detection(self, run_id: int, detection_id: str) -> str:
    """One upload of a re-analysis batch, by the batch's version (see ``services.reanalysis``)."""
    try:
        outcome = reanalysis.reanalyse_one(run_id, detection_id)
        kick_webhooks()
        return outcome
    except BundleError as exc:  # the version's bundle is gone or damaged: no retry will bring it back
        log.error("re-analysis %s of %s: %s", run_id, detection_id, exc)
        reanalysis.count(run_id, "failed")
        return "failed"
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            log.error("re-analysis %s: giving up on %s: %s", run_id, detection_id, exc)
            reanalysis.count(run_id, "failed")
            raise
        raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc


@shared_task(acks_late=False)
def send_webhooks() -> dict:
    """The callbacks that are due (``services.webhooks``): on beat's schedule (DETECTOR_WEBHOOK_SWEEP_SECONDS),
    and queued after each analysis that made one. Acknowledged when taken: each delivery is claimed in the database
    for its attempt, and one whose worker died is due again when its claim runs out."""
    return webhooks.send_due()


def kick_webhooks() -> None:
    """Have the callbacks an analysis made sent now rather than at the next beat (nothing queued where none is due)."""
    try:
        if webhooks.has_due():
            send_webhooks.delay()
    except Exception:  # the broker or the database: beat's next run sends them
        log.exception("could not queue the callbacks now; the periodic job sends them")


@shared_task
def sweep() -> dict:
    """The periodic repair (Celery beat): orphan files, rows without files, and stuck detections queued again."""
    report = cleanup(timedelta(minutes=settings.DETECTOR_STUCK_AFTER_MINUTES))
    videos = set(map(str, Detection.objects.filter(pk__in=report.stuck, kind=Kind.VIDEO).values_list("pk", flat=True)))
    for pk in report.stuck:
        (analyse_video if pk in videos else analyse_detection).delay(pk)
    counts = {name: len(items) for name, items in vars(report).items()}
    counts["queued"] = len(report.stuck)
    if any(counts.values()):
        log.warning("sweep: %s", counts)
    return counts
