"""Every API error is ``{"error": {"code", "message", "field"}}`` (``refusals.error_body``) with its HTTP status."""

from __future__ import annotations

from http import HTTPStatus

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from ..refusals import DETECTOR_DOWN, error_body
from ..services.inference import DetectorUnavailable
from ..storage import StorageUnavailable

RETRY_AFTER_SECONDS = 30


class ApiError(exceptions.APIException):
    """An error with its own status and code, the request field it concerns, and when to retry."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, wait: int | None = None):
        super().__init__(message, code)
        self.status_code = status
        self.field = field
        self.wait = wait  # DRF's handler turns it into Retry-After


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or None)
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large", "The request body is too large.")
    if isinstance(exc, TooManyFilesSent):
        return ApiError(HTTPStatus.BAD_REQUEST, "too_many_files", "The request has too many files.", "image")
    if isinstance(exc, SuspiciousOperation):
        return ApiError(HTTPStatus.BAD_REQUEST, "bad_request", "The request is malformed.")
    if isinstance(exc, DetectorUnavailable):
        return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "detector_unavailable", DETECTOR_DOWN, wait=RETRY_AFTER_SECONDS)
    if isinstance(exc, StorageUnavailable):
        message = "The file storage is not available right now. Please try again later."
        return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "storage_unavailable", message, wait=RETRY_AFTER_SECONDS)
    if isinstance(exc, (OperationalError, InterfaceError)):
        message = "The database is not available right now. Please try again later."
        return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "database_unavailable", message, wait=RETRY_AFTER_SECONDS)
    return exc


def _first_error(detail, field=None) -> tuple[str, str, str | None]:
    """The first message of a (possibly nested) DRF error detail, its code and its field."""
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return _first_error(value, None if key == api_settings.NON_FIELD_ERRORS_KEY else key)
    if isinstance(detail, list) and detail:
        return _first_error(detail[0], field)
    if isinstance(detail, exceptions.ErrorDetail):
        return detail.code, str(detail), field
    return "invalid", "Invalid input.", field


def exception_handler(exc, context):
    """DRF's handler (status, WWW-Authenticate, Retry-After), with the body in this API's one error shape."""
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a bug, left to Django (logged, 500)
    code, message, field = _first_error(exc.detail)
    response.data = error_body(code, message, getattr(exc, "field", None) or field)
    return response


@csrf_exempt  # it changes nothing, and an unsafe method must get the 404 too, not the CSRF failure page
def not_found(request, *args, **kwargs):
    """Any other address under /api/: a JSON 404 rather than the site's HTML page."""
    message = "There is no API endpoint at this address; endpoints end with a slash, e.g. /api/v1/detections/."
    return JsonResponse(error_body("not_found", message), status=HTTPStatus.NOT_FOUND)
