"""Many images in one request (the batch page and the API): each file counted, checked and stored on its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from ..models import Detection
from ..uploads import check_upload
from .detections import STORAGE_FAILED, display_name, submit
from .inference import get_detector
from .limits import seconds_until_upload_allowed, too_many_uploads

log = logging.getLogger(__name__)


@dataclass
class Rejection:
    code: str  # check_image's codes, "rate_limited" or "storage_unavailable"
    message: str
    retry_after: int | None = None


@dataclass
class Outcome:
    """What became of one file of a batch: a detection, or the reason it was refused."""

    name: str
    detection: Detection | None = None
    rejection: Rejection | None = None


def submit_each(uploads: list, request) -> list[Outcome]:
    """Submit every file on its own; a refused file stops no other. Raises DetectorUnavailable before any."""
    get_detector()
    outcomes, wait = [], None
    for upload in uploads:
        # Once over the rate, the rest of the batch is refused without counting against the next window.
        wait = wait or seconds_until_upload_allowed(request)
        if wait:
            rejection = Rejection("rate_limited", too_many_uploads(wait), wait)
            outcomes.append(Outcome(display_name(upload.name), rejection=rejection))
        else:
            outcomes.append(_submit_one(upload, request))
    return outcomes


def _submit_one(upload, request) -> Outcome:
    name = display_name(upload.name)
    try:
        checked = check_upload(upload)
    except ValidationError as exc:
        return Outcome(name, rejection=Rejection(exc.code, exc.messages[0]))
    try:
        return Outcome(name, detection=submit(checked, upload.name, request))
    except OSError:
        log.exception("upload %s of a batch could not be stored", name)
        return Outcome(name, rejection=Rejection("storage_unavailable", STORAGE_FAILED))
