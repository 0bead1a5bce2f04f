import logging
from http import HTTPStatus

from django.db import InterfaceError, OperationalError
from django.template.response import TemplateResponse

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30


class DatabaseUnavailableMiddleware:
    """A database that is down or locked gives a 503 page, not a 500.

    Uploads write their files first and their row in one transaction, undoing
    the files when the row fails, so nothing half-written is left behind.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.error("database unavailable: %s", exception)
        response = TemplateResponse(request, "503.html", {"reason": "database"}, status=HTTPStatus.SERVICE_UNAVAILABLE)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response.render()
