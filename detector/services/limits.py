"""The upload rate limit and the request size limit, shared by the form, the batch page and the API.

Both are checked before a request's body is read. The rate counts accepted uploads, and an anonymous client's
refused ones too (a signed-in user's file refused for its own fault uses up nothing); concurrent uploads may
overshoot the limit by a few.
"""

import logging

from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django_ratelimit.core import get_usage

from ..refusals import Refusal
from ..uploads import max_file_bytes, max_upload_bytes

log = logging.getLogger(__name__)
GROUP, KEY = "detector.upload", "user_or_ip"
MULTIPART_OVERHEAD = 1024 * 1024  # room for the boundaries and part headers around the files


class RateLimitUnavailable(Exception):
    """The cache that keeps the counts does not answer, and the limit fails closed.

    See ``DETECTOR_RATE_LIMIT_FAIL_OPEN``.
    """


def rate_for(request) -> str:
    """The client's rate: a signed-in user's (``DETECTOR_RATE_LIMIT_SIGNED_IN``) is higher than an anonymous
    visitor's (``DETECTOR_RATE_LIMIT``); an empty ``DETECTOR_RATE_LIMIT`` means no limit for anyone."""
    rate = settings.DETECTOR_RATE_LIMIT
    user = getattr(request, "user", None)
    if rate and user is not None and user.is_authenticated:
        return settings.DETECTOR_RATE_LIMIT_SIGNED_IN or rate
    return rate


def _usage(request, increment: bool):
    """The client's count in the current window. Any method reads the same count (the upload pages show it before
    a POST); accepted uploads increment it, and an anonymous visitor's refused ones."""
    rate = rate_for(request)
    if not rate:
        return None
    try:
        return get_usage(request, group=GROUP, key=KEY, rate=rate, increment=increment)
    except Exception:  # the cache backend's own errors (redis.ConnectionError, TimeoutError, ...)
        log.exception("upload rate limit: the cache does not answer")
        if settings.DETECTOR_RATE_LIMIT_FAIL_OPEN:
            return None
        raise RateLimitUnavailable from None


def seconds_until_upload_allowed(request) -> int | None:
    """The seconds to wait before the client may upload again, or None where it may now (nothing is counted).

    Raises RateLimitUnavailable where the cache is down and the limit fails closed.
    """
    usage = _usage(request, increment=False)
    if usage is None or usage["count"] < usage["limit"]:
        return None
    return max(1, int(usage["time_left"]))


def minutes_text(seconds: int) -> str:
    """A wait in whole minutes, rounded up ("1 minute", "44 minutes"): people do not count seconds."""
    minutes = max(1, -(-int(seconds) // 60))
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


def allowance(request) -> dict | None:
    """What the client may still upload now: ``{"left", "limit", "renews_in"}`` (the wait in words until the
    count starts again), or None where there is no limit or it cannot be read (the upload itself says why)."""
    try:
        usage = _usage(request, increment=False)
    except RateLimitUnavailable:
        return None
    if usage is None:
        return None
    left = max(0, usage["limit"] - usage["count"])
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    signed_in_rate = settings.DETECTOR_RATE_LIMIT_SIGNED_IN
    return {
        "left": left,
        "limit": usage["limit"],
        "per": period_text(rate_for(request)),
        "renews_in": minutes_text(usage["time_left"]),
        "refusals_count": not signed_in,
        # what signing in would give, where it gives more
        "signed_in_limit": None if signed_in or not signed_in_rate else rate_limit_count(signed_in_rate),
    }


def rate_limit_count(rate: str) -> int:
    return int(rate.split("/", 1)[0])


PERIODS = {"s": (1, "second"), "m": (60, "minute"), "h": (3600, "hour"), "d": (86400, "day")}


def period_text(rate: str) -> str:
    """The window of a rate such as "30/h" or "100/15m", in words: "an hour", "15 minutes"."""
    window = rate.split("/", 1)[1] if "/" in rate else "s"
    digits = "".join(c for c in window if c.isdigit())
    _, name = PERIODS.get(window[-1:].lower(), PERIODS["s"])
    if digits and int(digits) > 1:
        return f"{int(digits)} {name}s"
    return f"an {name}" if name == "hour" else f"a {name}"


def not_sent(wait: int) -> Refusal:
    """A file of a batch past the client's allowance: not sent, and when it can be."""
    message = f"Not sent: over your limit. You can send it in {minutes_text(wait)}."
    return Refusal("rate_limited", message, retry_after=wait, field=None)


def count_upload(request) -> None:
    """Count one accepted upload against the client's rate (an upload already stored is never refused here)."""
    try:
        _usage(request, increment=True)
    except RateLimitUnavailable:
        pass


def too_many_uploads(wait: int) -> str:
    return (
        f"Too many uploads: you have used all your checks for now. Please wait {minutes_text(wait)} before the "
        "next one; nothing was stored."
    )


def rate_limited(wait: int) -> Refusal:
    return Refusal("rate_limited", too_many_uploads(wait), retry_after=wait, field=None)


def declared_length(request) -> int:
    """The body length the request's headers declare (0 where they declare none or nonsense)."""
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def request_ceiling_bytes() -> int:
    """The largest request body any client may send (``DETECTOR_MAX_REQUEST_MB``), whatever it holds."""
    return int(settings.DETECTOR_MAX_REQUEST_MB * 1024 * 1024)


def refusal_before_reading(request, max_files: int) -> Refusal | None:
    """Refuse, from its headers alone, a request over the client's rate, or declaring a body larger than the files
    it may still send could make (``max_files``, fewer where its allowance has fewer left, each of the largest kind
    accepted) or than the ceiling. A body refused for its size counts as one upload of an anonymous client's."""
    try:
        usage = _usage(request, increment=False)
    except RateLimitUnavailable:
        usage = None  # the rate refusal below says so
    files = max_files if usage is None else max(1, min(max_files, usage["limit"] - usage["count"]))
    limit = min(files * max_file_bytes() + MULTIPART_OVERHEAD, request_ceiling_bytes())
    if declared_length(request) > limit:
        count_refusal(request)
        most = f"{files} files" if files > 1 else "one file"
        message = (
            f"The request is larger than {limit / 1024 / 1024:.0f} MB: send at most {most} now, "
            f"images of up to {settings.DETECTOR_MAX_UPLOAD_MB:g} MB and videos of up to "
            f"{settings.DETECTOR_MAX_VIDEO_MB:g} MB each."
        )
        return Refusal("request_too_large", message, field=None)
    return rate_refusal(request)


def count_refusal(request) -> None:
    """A refused upload counts as one against an anonymous client's allowance: junk sent without an account is
    not free. A signed-in user's refused files count nothing (they are answerable for their account)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        count_upload(request)


def rate_refusal(request) -> Refusal | None:
    """Why the client may not upload now (over its rate, or the rate cannot be checked); None where it may."""
    try:
        wait = seconds_until_upload_allowed(request)
    except RateLimitUnavailable:
        message = "Uploads cannot be counted against their limit right now; nothing was stored. Please try again later."
        return Refusal("rate_limit_unavailable", message, retry_after=30, field=None)
    return rate_limited(wait) if wait else None


class OneUploadInMemory(MemoryFileUploadHandler):
    """Keeps a request of at most one file's size in memory: its bytes are read whole anyway, so spooling them to
    a temporary file first would only write them twice. Larger requests (batches) go to temporary files."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.activated = content_length is not None and content_length <= max_upload_bytes() + MULTIPART_OVERHEAD


def keep_small_uploads_in_memory(request) -> None:
    """Before the body is read: hold a one-file request in memory, whatever ``FILE_UPLOAD_MAX_MEMORY_SIZE`` says."""
    request.upload_handlers.insert(0, OneUploadInMemory(request))
