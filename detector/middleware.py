import logging
from http import HTTPStatus

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from .refusals import error_body
from .services.limits import (
    MULTIPART_OVERHEAD,
    declared_length,
    keep_small_uploads_in_memory,
    refusal_before_reading,
    request_ceiling_bytes,
)
from .storage import StorageUnavailable

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30


DATABASE_DOWN = (OperationalError, InterfaceError)


def unavailable(reason: str = "database", maybe_stored: bool = False) -> HttpResponse:
    """The 503 page, rendered without the request: no context processor may touch the database that is down
    (the auth one reads the session and the user from it), so the page shows no account. ``maybe_stored``: the
    failure came after the view, so an upload may have been kept."""
    context = {"reason": reason, "maybe_stored": maybe_stored}
    response = HttpResponse(render_to_string("503.html", context), status=HTTPStatus.SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """A database that is down or locked, or a media storage that cannot be read or written
    (``StorageUnavailable``), gives a 503 page, not a 500.

    Uploads write their files first and their row in one transaction, undoing
    the files when the row fails, so nothing half-written is left behind. A database error raised outside a view
    (in another middleware, say the session's) reaches ``views.server_error``, which answers the same 503.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, StorageUnavailable):
            log.error("media storage unavailable: %s", exception)
            return unavailable("storage")
        if not isinstance(exception, DATABASE_DOWN):
            return None
        log.error("database unavailable: %s", exception)
        return unavailable()


class NotFoundPageMiddleware:
    """A page that is not there (a revoked share link, someone else's check) gets the site's own 404 page whatever
    DEBUG says: people on a development server (``make run``) are not shown Django's debugging page. The API and
    the admin answer their own way."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, Http404) or request.path.startswith(("/api/", "/admin/")):
            return None
        return HttpResponse(render_to_string("404.html", request=request), status=HTTPStatus.NOT_FOUND)


class UploadGuardMiddleware:
    """Answers a request body that cannot be accepted, or an upload over the client's rate, before the body is read.

    It stands before CsrfViewMiddleware, which would otherwise parse the whole multipart body for its token. Views
    that take uploads say so with ``max_files()`` and ``refused()`` (``views.UploadFormMixin``): their declared
    length is checked against what the client may still send (``limits.refusal_before_reading``). The API's upload
    view (``takes_uploads``) is held to the ceiling here and checks the rest in its view, once the token has said
    who the client is. Every other view takes forms, not files: a body beyond Django's own limit for form data is
    refused unread.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method not in ("POST", "PUT", "PATCH"):
            return None
        view_class = getattr(view_func, "view_class", None)
        if request.method == "POST" and hasattr(view_class, "refused"):
            refusal = refusal_before_reading(request, view_class.max_files())
            if refusal:
                return view_class.refused(request, refusal)
            keep_small_uploads_in_memory(request)
            return None
        takes_uploads = getattr(view_class, "takes_uploads", False)
        limit = request_ceiling_bytes() if takes_uploads else settings.DATA_UPLOAD_MAX_MEMORY_SIZE + MULTIPART_OVERHEAD
        if declared_length(request) > limit:
            return too_large(request, limit)
        return None


def too_large(request, limit: int) -> HttpResponse:
    """413 for a body refused from its declared length, as JSON where the client asks for it."""
    message = f"The request is larger than {limit / 1024 / 1024:.0f} MB, the most this address takes."
    if "application/json" in request.headers.get("Accept", "") or request.path.startswith("/api/"):
        return JsonResponse(error_body("request_too_large", message), status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    return HttpResponse(message, content_type="text/plain; charset=utf-8", status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
