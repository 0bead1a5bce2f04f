"""The OpenAPI description of each operation: what it answers, every error it can give, and examples."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

from ..services.fetch import NOT_MEDIA
from .serializers import (
    DetectionFilterSerializer,
    DetectionSerializer,
    ErrorSerializer,
    LinkUploadSerializer,
    ModelInfoSerializer,
    UploadErrorSerializer,
    UploadResponseSerializer,
    UploadSerializer,
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookListSerializer,
)

ID = "3f6c2a9e-8d1b-4c57-a0e2-5b7d9c1e4f80"
HOST = "https://deepfake-check.example.org"


def _error(code, message, field=None):
    return {"error": {"code": code, "message": message, "field": field}}


def _example(name, status, value, summary=None):
    return OpenApiExample(name, value=value, summary=summary or name, response_only=True, status_codes=[str(status)])


def _errors(status, description, *examples):
    """A documented error response: the one error shape, with an example for each way to get it."""
    return OpenApiResponse(ErrorSerializer, description=description, examples=[_example(*e) for e in examples])


DETECTION = {
    "id": ID,
    "url": f"{HOST}/api/v1/detections/{ID}/",
    "page": f"{HOST}/detections/{ID}/",
    "file_name": "portrait.jpg",
    "created_at": "2026-11-25T09:30:12.345678Z",
    "status": "done",
    "label": "Deepfake",
    "fake_probability": 0.982,
    "confidence": 0.982,
    "threshold": 0.923,
    "model_version": "2.16.0",
    "face_found": True,
    "faces": [
        {
            "number": 1,
            "box": {"x": 212, "y": 96, "width": 180, "height": 180},
            "label": "Deepfake",
            "fake_probability": 0.982,
            "models": [  # each model of the ensemble on its own, then the ensemble
                {
                    "name": "faces-effnetlite0-v2",
                    "version": "2.4.0",
                    "title": "Supervised: face swaps, GAN and diffusion faces",
                    "fake_probability": 0.991,
                    "label": "Deepfake",
                },
                {
                    "name": "faces-effnetlite2-v1",
                    "version": "2.11.0",
                    "title": "Supervised, larger backbone (Lite2)",
                    "fake_probability": 0.962,
                    "label": "Deepfake",
                },
                {
                    "name": "faces-effnetlite0-v1",
                    "version": "1.4.0",
                    "title": "Supervised, first version (team dataset only)",
                    "fake_probability": 0.874,
                    "label": "Uncertain",
                },
                {
                    "name": "ensemble-v2",
                    "version": "2.16.0",
                    "title": "Ensemble: the mean of three supervised face models, Lite2's without its mirror image",
                    "fake_probability": 0.982,
                    "label": "Deepfake",
                    "ensemble": True,
                },
            ],
            "crop_url": f"{HOST}/api/v1/detections/{ID}/faces/1/crop.png",
            "heatmap_url": f"{HOST}/api/v1/detections/{ID}/faces/1/heatmap.png",
        }
    ],
    "processing_ms": 61,
    "error_message": "",
    "review": {"verdict": "fake", "note": "Matches a known face-swap video.", "reviewed_at": "2026-11-25T11:02:40Z"},
    "image": {
        "format": "JPEG",
        "content_type": "image/jpeg",
        "width": 640,
        "height": 480,
        "size_bytes": 48213,
        "sha256": "9b74c9897bac770ffc029102a200c5de3f1b1f8f6c4bc2e1e6f3d7a7b0f1c2d3",
    },
}
NOT_AUTHENTICATED = (
    "Not authenticated",
    401,
    _error("not_authenticated", "Authentication credentials were not provided."),
)
BAD_TOKEN = ("Unknown token", 401, _error("authentication_failed", "Invalid token."))
UNAUTHORIZED = _errors(
    401,
    "No valid token or session (anonymous use is off unless DETECTOR_API_ANONYMOUS is set); "
    "the WWW-Authenticate header names the Token scheme.",
    NOT_AUTHENTICATED,
    BAD_TOKEN,
)
CSRF_EXAMPLE = ("CSRF token missing", 403, _error("permission_denied", "CSRF Failed: CSRF token missing."))
CSRF_FAILED = _errors(
    403,
    "A browser session sent no CSRF token (send X-CSRFToken), or the request is otherwise forbidden.",
    CSRF_EXAMPLE,
)
NOT_FOUND = _errors(
    404,
    "No such detection among yours (someone else's is a 404 too).",
    ("Not found", 404, _error("not_found", "No Detection matches the given query.")),
)
DETECTOR_DOWN = (
    "Detector unavailable",
    503,
    _error(
        "detector_unavailable", "The detector is not available right now; nothing was stored. Please try again later."
    ),
)
DATABASE_DOWN = (
    "Database unavailable",
    503,
    _error("database_unavailable", "The database is not available right now. Please try again later."),
)

LIST = extend_schema(
    operation_id="list_detections",
    tags=["detections"],
    summary="List your detections",
    description="Newest first, 20 a page (page_size up to 100), filtered by verdict, status, day and file name.",
    parameters=[DetectionFilterSerializer],
    responses={
        200: DetectionSerializer(many=True),
        400: _errors(
            400,
            "A filter is not valid.",
            ("Unknown label", 400, _error("invalid_choice", '"Fake" is not a valid choice.', "label")),
            (
                "Bad date",
                400,
                _error(
                    "invalid", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.", "created_from"
                ),
            ),
        ),
        401: UNAUTHORIZED,
        404: _errors(404, "No such page.", ("Invalid page", 404, _error("not_found", "Invalid page."))),
        503: _errors(503, "The database is down.", DATABASE_DOWN),
    },
    examples=[
        OpenApiExample(
            "A page of detections",
            value=DETECTION,  # drf-spectacular wraps it in a page
            response_only=True,
            status_codes=["200"],
        )
    ],
)

REJECTED_FILE = {
    "index": 1,
    "file_name": "notes.jpg",
    "detection": None,
    "error": {
        "code": "unsupported_media_type",
        "message": "This is not a JPEG, PNG, WebP, HEIC or AVIF image, nor an MP4, MOV, WebM or MKV video.",
        "field": "image",
    },
}


def _refused(code, message):
    """The body when no file of the upload was accepted: the first file's error, and each file's in results."""
    error = {"code": code, "message": message, "field": "image"}
    return {"error": error, "results": [{"index": 0, "file_name": "photo.jpg", "detection": None, "error": error}]}


def _upload_errors(status, description, *examples):
    return OpenApiResponse(UploadErrorSerializer, description=description, examples=[_example(*e) for e in examples])


UPLOAD = extend_schema(
    operation_id="upload_images",
    tags=["detections"],
    summary="Upload one or more images or videos, or check a link",
    description=(
        "Send `multipart/form-data` with one `image` field per file, or a `url` (multipart or JSON) that the "
        "server fetches instead (where DETECTOR_FETCH_URLS is on: http or https, no private or loopback "
        "address, at most 3 redirects, 10 seconds, the upload size limits; a link to a web page is refused with "
        "`not_media`); the fetched file is checked like an upload and its detection keeps `source_url`. "
        "Each file is checked, counted against the "
        "upload rate limit, stored and analysed on its own: a refused file stops no other. The answer is 201 "
        "where any file was accepted, with one entry per file in `results` (its detection, or its error). Where "
        "no file was accepted, the answer has the first file's error and status (400, 413, 415, 429 or 503), "
        "and `results` still lists every file. Without analysis workers the verdict is in the answer; with "
        "them (CELERY_BROKER_URL) a detection answers `pending` or `analysing`: poll its `url` until it is "
        "`done` or `failed`."
    ),
    request={"multipart/form-data": UploadSerializer, "application/json": LinkUploadSerializer},
    responses={
        201: OpenApiResponse(
            UploadResponseSerializer,
            description="At least one file was accepted.",
            examples=[
                _example(
                    "One accepted, one refused",
                    201,
                    {
                        "results": [
                            {"index": 0, "file_name": "portrait.jpg", "detection": DETECTION, "error": None},
                            REJECTED_FILE,
                        ]
                    },
                )
            ],
        ),
        400: _upload_errors(
            400,
            "No file was sent, too many were, or no file was accepted and the first was damaged, empty, "
            "too many pixels or had data after the image.",
            ("No file", 400, _error("required", "Choose one or more images or videos.", "image")),
            ("Too many files", 400, _error("too_many_files", "Upload at most 20 files at a time.", "image")),
            ("Damaged image", 400, _refused("damaged", "The image is truncated or damaged (image file is truncated).")),
            (
                "Link refused",
                400,
                _error(
                    "url_refused",
                    "This link cannot be checked: 10.0.0.5 is a private network address, which this server does "
                    "not contact.",
                    "url",
                ),
            ),
            ("Link to a page", 400, _error("not_media", NOT_MEDIA, "url")),
            (
                "Link failed",
                400,
                _error("fetch_failed", "The link could not be fetched: no answer within 10 seconds.", "url"),
            ),
            (
                "Hidden data",
                400,
                _refused("trailing_data", "The file has extra data after the image; upload the plain image."),
            ),
        ),
        401: UNAUTHORIZED,
        403: OpenApiResponse(
            ErrorSerializer,
            description="A session client without its CSRF token, or a link where checks by link are off.",
            examples=[
                _example(*CSRF_EXAMPLE),
                _example(
                    "Links off",
                    403,
                    _error("fetch_disabled", "Checks by link are turned off on this server: upload the file.", "url"),
                ),
            ],
        ),
        413: _upload_errors(
            413,
            "The only file (or the first, where none was accepted) is over the size limit, or the whole "
            "request is larger than the most files allowed could make it.",
            ("File too large", 413, _refused("file_too_large", "The file is larger than 10 MB.")),
            (
                "Request too large",
                413,
                _error(
                    "request_too_large",
                    "The request is larger than 201 MB: send at most 20 images of up to 10 MB each.",
                ),
            ),
        ),
        415: _upload_errors(
            415,
            "The file is not a JPEG, PNG, WebP, HEIC or AVIF image (detected from its bytes), "
            "or the request is not multipart.",
            (
                "Not an image",
                415,
                _refused(
                    "unsupported_media_type",
                    "This is not a JPEG, PNG, WebP, HEIC or AVIF image, nor an MP4, MOV, WebM or MKV video.",
                ),
            ),
            (
                "Not multipart",
                415,
                _error("unsupported_media_type", 'Unsupported media type "application/json" in request.'),
            ),
        ),
        429: _upload_errors(
            429,
            "Over the upload rate limit (DETECTOR_RATE_LIMIT, each image counts); Retry-After says when to retry.",
            (
                "Rate limited",
                429,
                _refused(
                    "rate_limited",
                    "Too many uploads: you have used all your checks for now. Please wait 30 minutes before the "
                    "next one; nothing was stored.",
                ),
            ),
        ),
        503: _upload_errors(
            503,
            "The detector, the file storage or the database is not available; nothing was stored.",
            DETECTOR_DOWN,
            DATABASE_DOWN,
        ),
    },
)

DETAIL = extend_schema(
    operation_id="get_detection",
    tags=["detections"],
    summary="Read one detection",
    description="The verdict, fake probability, confidence, threshold, model version, faces with their boxes, "
    "scores and heatmap URLs, and the status (poll while it is `pending` or `analysing`).",
    responses={200: DetectionSerializer, 401: UNAUTHORIZED, 404: NOT_FOUND},
    examples=[OpenApiExample("A detection", value=DETECTION, response_only=True, status_codes=["200"])],
)

DELETE = extend_schema(
    operation_id="delete_detection",
    tags=["detections"],
    summary="Delete one detection",
    description="Deletes the detection, its image and every file made from it.",
    responses={204: OpenApiResponse(description="Deleted."), 401: UNAUTHORIZED, 403: CSRF_FAILED, 404: NOT_FOUND},
)

FACE_IMAGE = extend_schema(
    operation_id="get_face_image",
    tags=["detections"],
    summary="A judged face's crop or heatmap",
    description="PNG of the face (`crop`) or of the face with its Grad-CAM heatmap of the fake score (`heatmap`), "
    "made on first request. A 404 where there is no such face or the detection was judged by another model.",
    parameters=[
        OpenApiParameter("number", {"type": "integer", "minimum": 1}, OpenApiParameter.PATH, description="From 1."),
        OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=["crop", "heatmap"]),
    ],
    responses={
        (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The PNG image."),
        401: UNAUTHORIZED,
        404: _errors(
            404,
            "No such detection among yours, or no such face.",
            ("No such face", 404, _error("not_found", "no such face")),
        ),
    },
)

STILL = extend_schema(
    operation_id="get_video_still",
    tags=["detections"],
    summary="One of a video track's most suspicious frames, or its heatmap",
    description="`image`: the frame with the track's face boxed (JPEG, at most 640 px); `heatmap`: the face with its "
    "heatmap of the fake score (PNG). Tracks and stills are numbered from 1, as in `tracks` and on the result page.",
    parameters=[
        OpenApiParameter("track", {"type": "integer", "minimum": 1}, OpenApiParameter.PATH, description="From 1."),
        OpenApiParameter("number", {"type": "integer", "minimum": 1}, OpenApiParameter.PATH, description="From 1."),
        OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=["image", "heatmap"]),
    ],
    responses={
        (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The frame (image)."),
        (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The heatmap."),
        401: UNAUTHORIZED,
        404: _errors(
            404,
            "No such detection among yours, or no such track or still.",
            ("No such still", 404, _error("not_found", "no such still")),
        ),
    },
)

REPORT = extend_schema(
    operation_id="get_report",
    tags=["detections"],
    summary="A detection's report, to file or attach",
    description="`pdf`: the report as a PDF (the image with its face boxes, the heatmaps, every figure); `json`: the "
    "same facts as a document. Both name the analysis they report (model version and time), the file (name, size, "
    "sha256, dimensions), the verdict with its probability and thresholds, each face and each model's score, the "
    "provenance findings, the review outcome and note, earlier sightings (counts only) and the model's limits.",
    parameters=[OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=["pdf", "json"])],
    responses={
        (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The report as a PDF."),
        (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The report as a document."),
        401: UNAUTHORIZED,
        404: _errors(
            404,
            "No such detection among yours, or no such kind of report.",
            ("Not found", 404, _error("not_found", "no such report")),
        ),
    },
)

MODEL = extend_schema(
    operation_id="get_model",
    tags=["model"],
    summary="The active model",
    description="Version, decision thresholds, a summary of its training and its measured test metrics, "
    "from the model bundle this server serves.",
    responses={
        200: ModelInfoSerializer,
        401: UNAUTHORIZED,
        503: _errors(
            503,
            "The model bundle is missing or damaged.",
            ("Model unavailable", 503, _error("model_unavailable", "The model bundle is not available.")),
        ),
    },
    examples=[
        OpenApiExample(
            "The shipped model",
            value={
                "name": "ensemble-v2",
                "version": "2.16.0",
                "loaded": True,
                "input_size": 224,
                "thresholds": {"deepfake_from": 0.923, "real_below": 0.44, "decision": 0.923},
                "training": {
                    "dataset": "shared/datasets/faces + .cache/datasets/ffpp (val split: the rule, the calibration "
                    "and the thresholds)",
                    "train_images": None,
                    "val_images": 2792,
                    "train_by_source": None,
                    "chosen": None,
                    "finished": "2026-12-07T08:21:44+00:00",
                    "val_auc": 0.957,
                    "threshold_rule": "at most 3.0% of validation reals are called Deepfake, overall and in every "
                    "real source with 50 or more images",
                },
                "test_metrics": {
                    "overall": {"n": 2171, "auc": 0.961, "detection_rate": 0.549, "false_accusation_rate": 0.007},
                    "by_source": {"dfdc": {"n": 1172, "auc": 0.912, "detection_rate": 0.22}},
                },
                "members": [
                    {
                        "bundle": "faces-effnetlite0-v2",
                        "version": "2.4.0",
                        "title": "Supervised: face swaps, GAN and diffusion faces",
                        "weight": 0.333,
                        "train_images": 20656,
                    },
                    {
                        "bundle": "faces-effnetlite2-v1",
                        "version": "2.11.0",
                        "title": "Supervised, larger backbone (Lite2)",
                        "weight": 0.333,
                        "train_images": 20656,
                    },
                    {
                        "bundle": "faces-effnetlite0-v1",
                        "version": "1.4.0",
                        "title": "Supervised, first version (team dataset only)",
                        "weight": 0.333,
                        "train_images": 17806,
                    },
                ],
            },
            response_only=True,
            status_codes=["200"],
        )
    ],
)


WEBHOOK_SIGNING = (
    'Each event is a POST of JSON, `{"event": "detection.done" | "detection.failed", "created": ISO time, '
    '"detection": {id, url, status, kind, label, fake_probability, model_version}}`, signed in one header: '
    "`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 keyed with the UTF-8 bytes of the secret, of the bytes "
    '"<t>.<body>">` (Stripe\'s scheme; reject a `t` more than a few minutes old). An attempt that does not get a '
    "2xx within DETECTOR_WEBHOOK_TIMEOUT seconds is tried again after 1, 2, 4 ... minutes (at most 6 hours apart); "
    "an endpoint that fails for DETECTOR_WEBHOOK_DISABLE_AFTER_HOURS (24) is disabled and its waiting events "
    "given up. A check deleted before its event goes sends nothing."
)
WEBHOOKS = extend_schema(
    operation_id="list_webhooks",
    tags=["webhooks"],
    summary="Your callback addresses and their deliveries",
    description="Every address you registered, each with its latest 20 deliveries and every attempt of each. "
    + WEBHOOK_SIGNING,
    responses={
        200: OpenApiResponse(WebhookListSerializer, description="Your callbacks, the newest first."),
        401: UNAUTHORIZED,
    },
)
WEBHOOK_CREATE = extend_schema(
    operation_id="create_webhook",
    tags=["webhooks"],
    summary="Register a callback address",
    description="From now on every check of yours that ends (done or failed, re-analyses too) is POSTed to it. "
    "The answer holds the signing secret, shown this once. Addresses on loopback, private, link-local and "
    "metadata ranges, and plain http, are refused (unless DETECTOR_ALLOW_PRIVATE_URLS is on, as in development). "
    + WEBHOOK_SIGNING,
    request={"application/json": WebhookCreateSerializer, "multipart/form-data": WebhookCreateSerializer},
    responses={
        201: OpenApiResponse(
            WebhookCreatedSerializer,
            description="Registered; keep the secret.",
            examples=[
                _example(
                    "Registered",
                    201,
                    {"id": 7, "url": "https://hooks.example.org/deepfake", "secret": "whsec_4q9Zt0n3b2J7..."},
                )
            ],
        ),
        400: _errors(
            400,
            "Not a URL, an address that may not be called, or too many callbacks already.",
            (
                "Private address",
                400,
                _error(
                    "url_refused",
                    "This address cannot be called: 192.168.1.4 is a private network address, which this server "
                    "does not contact.",
                    "url",
                ),
            ),
            (
                "Too many",
                400,
                _error("too_many_webhooks", "at most 5 callback addresses per account; remove one first.", "url"),
            ),
        ),
        401: UNAUTHORIZED,
        403: CSRF_FAILED,
        415: _errors(
            415,
            "The body is neither JSON nor form data (or its Content-Type could not be read).",
            (
                "Not JSON",
                415,
                _error("unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
            ),
        ),
    },
)
WEBHOOK_DELETE = extend_schema(
    operation_id="delete_webhook",
    tags=["webhooks"],
    summary="Remove a callback address",
    description="Nothing more is sent to it, waiting deliveries included.",
    responses={
        204: OpenApiResponse(description="Removed."),
        401: UNAUTHORIZED,
        403: CSRF_FAILED,
        404: _errors(
            404,
            "You have no callback with this id.",
            ("Not found", 404, _error("not_found", "You have no callback with this id.")),
        ),
    },
)
