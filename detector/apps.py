import logging
import os
import sys
import threading
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings

log = logging.getLogger(__name__)
SERVER_PROGRAMS = ("gunicorn", "uvicorn", "daphne", "uwsgi")


def serves_requests(argv=None, environ=None) -> bool:
    """Whether this process will serve requests (and so should load the model now).

    ``runserver`` loads in its auto-reloading child only; ``migrate``, ``check``,
    the test collection and other commands stay free of TensorFlow.
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    program = Path(argv[0]).name if argv else ""
    if any(name in program for name in SERVER_PROGRAMS):
        return True
    if len(argv) > 1 and argv[1] == "runserver":
        return environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False


class DetectorConfig(AppConfig):
    name = "detector"
    verbose_name = "Deepfake detector"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, signals  # noqa: F401  (register the system checks and signal receivers)
        from .services.inference import load_service

        preload = settings.DETECTOR_PRELOAD
        if preload or (preload is None and serves_requests()):
            load_service()
        if serves_requests() and settings.CELERY_TASK_ALWAYS_EAGER and settings.DETECTOR_VIDEO_WORKERS > 0:
            # Videos this process's pool was analysing when it stopped, taken up once start-up is over.
            timer = threading.Timer(2.0, _resume_videos)
            timer.daemon = True
            timer.start()
        if serves_requests() and settings.CELERY_TASK_ALWAYS_EAGER and settings.DETECTOR_VIDEO_WORKERS > 0:
            from .dispatch import start_webhook_timer

            start_webhook_timer(settings.DETECTOR_WEBHOOK_SWEEP_SECONDS)  # retries of callbacks, without a beat


def _resume_videos() -> None:
    from .dispatch import resume_videos

    try:
        resume_videos()
    except Exception:  # the database is not there yet: the sweep or cleanup_detections takes them up later
        log.exception("could not look for unfinished videos")
