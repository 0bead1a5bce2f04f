"""Health endpoints for load balancers: /healthz (the process answers) and /readyz (it can serve)."""

import logging
from http import HTTPStatus
from uuid import uuid4

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


@never_cache
def readyz(request):
    checks = {"model": is_loaded(), "database": _database_ok(), "media": _media_writable()}
    ready = all(checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
    )
