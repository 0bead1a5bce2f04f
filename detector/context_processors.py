from django.conf import settings

from .uploads import max_upload_bytes


def detector_settings(request):
    """Limits the templates show to users (and the upload scripts check before sending)."""
    return {
        "max_upload_mb": settings.DETECTOR_MAX_UPLOAD_MB,
        "max_upload_bytes": max_upload_bytes(),
        "max_batch_files": settings.DETECTOR_BATCH_MAX_FILES,
        "retention_days": settings.DETECTOR_RETENTION_DAYS,
    }
