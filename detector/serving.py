"""Serving a detection's files and face images, and the owner check every per-detection view shares.

Used by the site's views, the admin and the API alike.
"""

from contextlib import contextmanager

from django.http import FileResponse, Http404, HttpResponse, JsonResponse

from .models import Detection
from .services.explanations import ExplanationUnavailable, face_image
from .services.inference import DetectorUnavailable
from .storage import StorageUnavailable


@contextmanager
def storage_errors():
    """The media storage failing (OSError: a full or read-only disk, a lost share, S3 down) as a 503."""
    try:
        yield
    except OSError as exc:
        raise StorageUnavailable(str(exc)) from exc


class OwnedDetectionMixin:
    """Every per-detection view sees only the requester's own detections: others are a 404."""

    def get_queryset(self):
        return Detection.objects.owned_by(self.request)


def serve_face_image(detection: Detection, number: int, kind: str) -> HttpResponse:
    """A judged face's crop or heatmap as PNG, drawn on first request."""
    try:
        with storage_errors():
            png = face_image(detection, number, kind)
    except (ExplanationUnavailable, DetectorUnavailable) as exc:
        raise Http404(str(exc)) from exc
    response = HttpResponse(png, content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def report_response(detection: Detection, kind: str, facts: dict | None) -> HttpResponse:
    """The detection's report, as a PDF or a JSON document, to download."""
    from .services import reports

    stem = f"deepfake-check-report-{detection.pk}"
    if kind == "pdf":
        with storage_errors():
            response = HttpResponse(reports.pdf(detection, facts), content_type="application/pdf")
    else:
        response = JsonResponse(reports.document(detection, facts), json_dumps_params={"indent": 1})
    response["Content-Disposition"] = f'attachment; filename="{stem}.{kind}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def serve_detection_file(detection: Detection, variant: str) -> FileResponse:
    """The original bytes (``image``) or a re-encoded copy (``preview``, ``thumbnail``), never sniffable."""
    field = getattr(detection, variant)
    if variant == "image":
        content_type = detection.content_type
        filename = f"{detection.id}.{field.name.rsplit('.', 1)[-1]}"
    else:
        content_type, filename = "image/jpeg", f"{detection.id}-{variant}.jpg"
    with storage_errors():
        response = FileResponse(field.open("rb"), content_type=content_type, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def still_of(detection: Detection, track: int, number: int) -> dict:
    """One of a video track's kept stills (``number`` from 1), or a 404."""
    found = next((t for t in detection.tracks or [] if t.get("id") == track), None)
    stills = found.get("stills", []) if found else []
    if not 1 <= number <= len(stills):
        raise Http404("no such still")
    return stills[number - 1]


def serve_still(detection: Detection, track: int, number: int, kind: str) -> FileResponse:
    """A video still (the frame, its face boxed, as JPEG) or its face's heatmap (PNG)."""
    name = still_of(detection, track, number).get(kind)
    if kind not in ("image", "heatmap") or not name:
        raise Http404("no such picture")
    content_type = "image/jpeg" if kind == "image" else "image/png"
    with storage_errors():
        response = FileResponse(detection.image.storage.open(name, "rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
