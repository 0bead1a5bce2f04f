"""API views: authentication, parsing and the error shape are DRF's and errors.py's; the work is the services'."""

from http import HTTPStatus

from csp.decorators import csp_update
from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema_view
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import generics
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ..dispatch import submit_each, submit_link
from ..models import Webhook
from ..services import webhooks
from ..services.detections import delete_detection
from ..services.fetch import FetchRefused
from ..services.inference import bundle_facts, get_detector, is_loaded
from ..services.limits import count_refusal, keep_small_uploads_in_memory, refusal_before_reading
from ..services.outbound import UrlRefused
from ..serving import OwnedDetectionMixin, report_response, serve_face_image, serve_still
from ..uploads import check_batch
from . import openapi
from .errors import ApiError
from .pagination import Pagination
from .serializers import (
    DetectionFilterSerializer,
    DetectionSerializer,
    ModelInfoSerializer,
    UploadResultSerializer,
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookListSerializer,
)


@extend_schema_view(get=openapi.LIST, post=openapi.UPLOAD)
class DetectionsView(OwnedDetectionMixin, generics.ListAPIView):
    takes_uploads = True  # UploadGuardMiddleware: the ceiling before authentication, the rest in post()
    serializer_class = DetectionSerializer
    pagination_class = Pagination
    parser_classes = [MultiPartParser, JSONParser]

    def get_queryset(self):
        # A plain dict, not the QueryDict: DRF reads an empty form value as "not given", the schema as invalid.
        filters = DetectionFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        return (
            super()
            .get_queryset()
            .recent()
            .with_label(f.get("label"))
            .with_status(f.get("status"))
            .created_between(f.get("created_from"), f.get("created_to"))
            .search(f.get("q"))
            .prefetch_related("analyses")
        )

    def post(self, request):
        # After authentication (the rate is per user), before the body is parsed.
        refusal = refusal_before_reading(request, settings.DETECTOR_BATCH_MAX_FILES)
        if refusal:
            raise ApiError(refusal.status, refusal.client_code, refusal.message, refusal.field, refusal.retry_after)
        keep_small_uploads_in_memory(request._request)
        data = request.data if hasattr(request.data, "get") else {}  # a JSON body may be any value
        url = data.get("url") if not request.FILES else None
        if url:  # a check by link: the server fetches the file
            get_detector()
            try:
                outcome = submit_link(str(url), request)
            except FetchRefused as exc:
                count_refusal(request)
                raise ApiError(exc.status, exc.code, str(exc), "url") from exc
            return upload_response([outcome], self.get_serializer_context())
        if request.content_type.startswith("application/json"):
            message = "Files are sent as multipart/form-data; a JSON body can only carry a url to check."
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message, "image")
        try:
            files = check_batch(request.FILES.getlist("image"))
        except ValidationError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, exc.code, exc.messages[0], "image") from exc
        return upload_response(submit_each(files, request), self.get_serializer_context())


def upload_response(outcomes, context) -> Response:
    """201 where any file was accepted, else the first file's error and status; every file's fate in results."""
    results = [
        {"index": i, "file_name": o.name, "detection": o.detection, "error": o.refusal and o.refusal.body()["error"]}
        for i, o in enumerate(outcomes)
    ]
    data = {"results": UploadResultSerializer(results, many=True, context=context).data}
    if any(o.detection for o in outcomes):
        status = HTTPStatus.CREATED
    else:
        status = outcomes[0].refusal.status
        data = {"error": data["results"][0]["error"], **data}
    response = Response(data, status=status)
    waits = [o.refusal.retry_after for o in outcomes if o.refusal and o.refusal.retry_after]
    if waits:
        response["Retry-After"] = str(max(waits))
    return response


@extend_schema_view(get=openapi.DETAIL, delete=openapi.DELETE)
class DetectionView(OwnedDetectionMixin, generics.RetrieveDestroyAPIView):
    serializer_class = DetectionSerializer

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "with_sightings": True}  # one detection: worth the search

    def perform_destroy(self, detection):
        delete_detection(detection)


@extend_schema_view(get=openapi.FACE_IMAGE)
class FaceImageView(OwnedDetectionMixin, APIView):
    def get(self, request, pk, number, kind):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        return serve_face_image(detection, number, kind)

    def perform_content_negotiation(self, request, force=False):
        # The PNG bypasses the renderers; an error is JSON whatever the client said it accepts.
        return super().perform_content_negotiation(request, force=True)


@extend_schema_view(get=openapi.STILL)
class StillView(OwnedDetectionMixin, APIView):
    def get(self, request, pk, track, number, kind):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        return serve_still(detection, track, number, kind)

    def perform_content_negotiation(self, request, force=False):
        # The picture bypasses the renderers; an error is JSON whatever the client said it accepts.
        return super().perform_content_negotiation(request, force=True)


@extend_schema_view(get=openapi.REPORT)
class ReportView(OwnedDetectionMixin, APIView):
    def get(self, request, pk, kind):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        return report_response(detection, kind, bundle_facts())

    def perform_content_negotiation(self, request, force=False):
        # The report bypasses the renderers; an error is JSON whatever the client said it accepts.
        return super().perform_content_negotiation(request, force=True)


@extend_schema_view(get=openapi.MODEL)
class ModelView(APIView):
    def get(self, request):
        facts = bundle_facts()
        if facts is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "model_unavailable", "The model bundle is not available.")
        return Response(ModelInfoSerializer({**facts, "loaded": is_loaded()}).data)


@extend_schema_view(get=openapi.WEBHOOKS, post=openapi.WEBHOOK_CREATE)
class WebhooksView(APIView):
    """The requester's callback addresses: list them (with their deliveries), or register one."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, MultiPartParser]

    def get(self, request):
        hooks = Webhook.objects.filter(user=request.user)
        return Response(WebhookListSerializer({"results": hooks}).data)

    def post(self, request):
        data = WebhookCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            webhook, secret = webhooks.register(request.user, data.validated_data["url"])
        except UrlRefused as exc:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "url_refused", f"This address cannot be called: {exc}.", "url"
            ) from exc
        except webhooks.TooManyWebhooks as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "too_many_webhooks", f"{exc}; remove one first.", "url") from exc
        body = WebhookCreatedSerializer({"id": webhook.pk, "url": webhook.url, "secret": secret}).data
        return Response(body, status=HTTPStatus.CREATED)


@extend_schema_view(delete=openapi.WEBHOOK_DELETE)
class WebhookView(APIView):
    permission_classes = [IsAuthenticated]

    def delete(self, request, pk):
        if not webhooks.remove(request.user, pk):
            raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "You have no callback with this id.")
        return Response(status=HTTPStatus.NO_CONTENT)


# Swagger UI's icons are data: images; its scripts and styles come from this site (drf-spectacular-sidecar).
@method_decorator(csp_update({"img-src": ["data:"]}), name="dispatch")
class DocsView(SpectacularSwaggerSplitView):
    template_name = "api/swagger_ui.html"
