"""Health endpoints for load balancers: /healthz (the process answers) and /readyz (it can serve)."""

import logging
from http import HTTPStatus
from uuid import uuid4

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from .services.inference import is_loaded

log = logging.getLogger(__name__)


@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        log.exception("readiness: the database does not answer")
        return False


def _media_writable() -> bool:
    name = f"health/{uuid4().hex}.txt"
    try:
        saved = default_storage.save(name, ContentFile(b"ok"))
        default_storage.delete(saved)
        return True
    except Exception:
        log.exception("readiness: media storage is not writable")
        return False


def _cache_ok() -> bool:
    try:
        key = f"readyz-{uuid4().hex}"
        cache.set(key, 1, 10)
        return cache.get(key) == 1
    except Exception:
        log.exception("readiness: the cache does not answer")
        return False


def _broker_ok() -> bool | None:
    """Whether the job queue's broker answers; None where there is none (analyses run in the web process)."""
    if not settings.CELERY_BROKER_URL:
        return None
    from deepfake_site.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        log.exception("readiness: the broker does not answer")
        return False


@never_cache
def readyz(request):
    """Ready: the model, the database and the media; the cache too where the rate limit fails closed without it.

    The broker is reported but not required: uploads are kept pending while it is down, and queued once it is back.
    """
    checks = {
        "model": is_loaded(),
        "database": _database_ok(),
        "media": _media_writable(),
        "cache": _cache_ok(),
        "broker": _broker_ok(),
    }
    needed = ["model", "database", "media"]
    if settings.DETECTOR_RATE_LIMIT and not settings.DETECTOR_RATE_LIMIT_FAIL_OPEN:
        needed.append("cache")
    ready = all(checks[name] for name in needed)
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
    )
