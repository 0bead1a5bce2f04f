from django.conf import settings
from django.core.checks import Error, register

from .ml.bundle import BundleError, read_metadata


@register()
def check_model_bundle(app_configs=None, **kwargs):
    """The configured model bundle exists, is intact and fits this code (no TensorFlow needed)."""
    try:
        read_metadata(settings.DETECTOR_MODEL)
    except BundleError as exc:
        return [
            Error(
                str(exc),
                hint="Set DETECTOR_MODEL to a bundle folder, or restore ml_models/ from git "
                "(python manage.py train_detector writes a new one).",
                id="detector.E001",
            )
        ]
    return []
