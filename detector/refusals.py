"""Why an upload or a request was refused, told the same way by the pages' JSON and the API.

Every JSON error is ``{"error": {"code", "message", "field"}}`` with its HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

# The codes of the checks (uploads.py, the limits) that have a status of their own, and the code clients see;
# every other refusal of a file is a 400 under its own code (empty, damaged, trailing_data, too_many_pixels, ...).
STATUS_AND_CODE = {
    "too_large": (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "file_too_large"),
    "request_too_large": (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large"),
    "unsupported_format": (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    "rate_limited": (HTTPStatus.TOO_MANY_REQUESTS, "rate_limited"),
    "rate_limit_unavailable": (HTTPStatus.SERVICE_UNAVAILABLE, "rate_limit_unavailable"),
    "storage_unavailable": (HTTPStatus.SERVICE_UNAVAILABLE, "storage_unavailable"),
    "detector_unavailable": (HTTPStatus.SERVICE_UNAVAILABLE, "detector_unavailable"),
}

# What a client is told when an upload cannot be taken at all; either way nothing is kept.
DETECTOR_DOWN = "The detector is not available right now; nothing was stored. Please try again later."
STORAGE_FAILED = "The upload could not be stored (file storage unavailable); nothing was kept."


def error_body(code: str, message: str, field: str | None = None) -> dict:
    """The one JSON shape of an error."""
    return {"error": {"code": code, "message": message, "field": field}}


@dataclass
class Refusal:
    """Why a file (or a whole request) was not taken, and when to try again."""

    code: str  # the checks' own code: too_large, damaged, rate_limited, storage_unavailable, ...
    message: str
    retry_after: int | None = None
    field: str | None = "image"

    @property
    def status(self) -> int:
        return STATUS_AND_CODE.get(self.code, (HTTPStatus.BAD_REQUEST, self.code))[0]

    @property
    def client_code(self) -> str:
        return STATUS_AND_CODE.get(self.code, (None, self.code))[1]

    def body(self) -> dict:
        """The refusal as clients see it, in the one error shape."""
        return error_body(self.client_code, self.message, self.field)

    @classmethod
    def from_validation_error(cls, exc, field: str | None = "image") -> Refusal:
        return cls(exc.code or "invalid", exc.messages[0], field=field)
