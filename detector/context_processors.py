from django.conf import settings


def detector_settings(request):
    """Limits the templates show to users (and the upload script checks before sending)."""
    return {
        "max_upload_mb": settings.DETECTOR_MAX_UPLOAD_MB,
        "max_upload_bytes": int(settings.DETECTOR_MAX_UPLOAD_MB * 1024 * 1024),
    }
