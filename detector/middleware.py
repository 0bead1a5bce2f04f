import logging
from http import HTTPStatus

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

from .services.limits import keep_small_uploads_in_memory, refusal_before_reading

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
    """A database that is down or locked gives a 503 page, not a 500.

    Uploads write their files first and their row in one transaction, undoing
    the files when the row fails, so nothing half-written is left behind. A database error raised outside a view
    (in another middleware, say the session's) reaches ``views.server_error``, which answers the same 503.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_DOWN):
            return None
        log.error("database unavailable: %s", exception)
        return unavailable()


class UploadGuardMiddleware:
    """Answers an upload that is too large or over the client's rate before its body is read.

    It stands before CsrfViewMiddleware, which would otherwise parse the whole multipart body for its token. It
    only looks (the rate is counted for accepted uploads), so a forged request spends nobody's allowance. Views
    that take uploads say so with ``max_files()`` and ``refused()`` (``views.UploadFormMixin``); the API checks
    the same in its view, once the token has said who the client is.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        view_class = getattr(view_func, "view_class", None)
        if request.method != "POST" or not hasattr(view_class, "refused"):
            return None
        refusal = refusal_before_reading(request, view_class.max_files())
        if refusal:
            return view_class.refused(request, refusal)
        keep_small_uploads_in_memory(request)
        return None
