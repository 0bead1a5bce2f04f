import os

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .ml.inference.bundle import BundleError, read_metadata


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


PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache")
CONSOLE_MAIL = ("django.core.mail.backends.console.EmailBackend", "django.core.mail.backends.locmem.EmailBackend")


def _web_processes() -> int:
    """The gunicorn workers this machine runs (gunicorn.conf.py: WEB_CONCURRENCY, else one per usable core)."""
    try:
        return int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
    except (ValueError, AttributeError):
        return os.cpu_count() or 1


@register(Tags.security, deploy=True)
def check_deployment(app_configs=None, **kwargs):
    """What a production deployment gets wrong without an error: a rate limit per process, mail to stdout."""
    found = []
    backend = settings.CACHES["default"]["BACKEND"]
    processes = _web_processes()
    if settings.DETECTOR_RATE_LIMIT and backend in PER_PROCESS_CACHES and processes > 1:
        found.append(
            Warning(
                f"The upload rate limit ({settings.DETECTOR_RATE_LIMIT}) is counted in a cache of each process "
                f"({backend.rsplit('.', 1)[-1]}), and {processes} web processes would each allow it in full.",
                hint="Set CACHE_URL to a shared cache, e.g. redis://127.0.0.1:6379/0.",
                id="detector.W001",
            )
        )
    if settings.EMAIL_BACKEND in CONSOLE_MAIL:
        found.append(
            Warning(
                "Mail goes to the server's output, not to people: password-reset links, with their tokens, would "
                "be printed in the logs.",
                hint="Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.org:587.",
                id="detector.W002",
            )
        )
    return found
