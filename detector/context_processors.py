from django.conf import settings

from .uploads import ACCEPTED_TYPES, max_upload_bytes, max_video_bytes


def detector_settings(request):
    """Limits the templates show to users (and the upload scripts check before sending)."""
    return {
        "max_upload_mb": settings.DETECTOR_MAX_UPLOAD_MB,
        "max_upload_bytes": max_upload_bytes(),
        "max_video_mb": settings.DETECTOR_MAX_VIDEO_MB,
        "max_video_bytes": max_video_bytes(),
        "max_video_minutes": settings.DETECTOR_MAX_VIDEO_SECONDS / 60,
        "accepted_types": ACCEPTED_TYPES,
        "max_batch_files": settings.DETECTOR_BATCH_MAX_FILES,
        "retention_days": settings.DETECTOR_RETENTION_DAYS,
        "reviewed_for_training": settings.DETECTOR_REVIEWED_FOR_TRAINING,
        "sends_mail": settings.DETECTOR_SENDS_MAIL,
    }
