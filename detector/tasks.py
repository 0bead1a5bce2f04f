"""Analysis jobs for Celery workers. They call the services; what queues them is ``dispatch``."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import DatabaseError

from .models import Detection, Status
from .services import analysis, detections
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
    try:
        detection = analysis.run(detection_id, new_attempt=self.request.retries == 0)
        if detection is None:
            return "skipped"
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            log.error("giving up on detection %s: %s", detection_id, exc)
            unfinished = Detection.objects.filter(pk=detection_id, status__in=Status.unfinished()).first()
            if unfinished:
                detections.fail(unfinished, "The analysis service is unavailable; please upload the image again.")
            raise
        raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc
    return detection.status


@shared_task
def sweep() -> dict:
    """The periodic repair (Celery beat): orphan files, rows without files, and stuck detections queued again."""
    report = cleanup(timedelta(minutes=settings.DETECTOR_STUCK_AFTER_MINUTES))
    for pk in report.stuck:
        analyse_detection.delay(pk)
    counts = {name: len(items) for name, items in vars(report).items()}
    counts["queued"] = len(report.stuck)
    if any(counts.values()):
        log.warning("sweep: %s", counts)
    return counts
