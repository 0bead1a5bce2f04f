"""The upload rate limit, shared by the form, the batch page and the API: each image counts once."""

from django.conf import settings
from django_ratelimit.core import get_usage


def seconds_until_upload_allowed(request) -> int | None:
    """Count this upload against the client's rate; the seconds to wait when over it, else None."""
    rate = settings.DETECTOR_RATE_LIMIT
    if not rate:
        return None
    usage = get_usage(request, group="detector.upload", key="user_or_ip", rate=rate, method="POST", increment=True)
    return max(1, int(usage["time_left"])) if usage and usage["should_limit"] else None


def too_many_uploads(wait: int) -> str:
    return f"Too many uploads. Please wait {wait} seconds before the next one; nothing was stored."
