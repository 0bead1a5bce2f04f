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
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services.batch import submit_each
from ..services.detections import delete_detection
from ..services.inference import is_loaded, model_facts
from ..uploads import check_batch, max_upload_bytes
from ..views import OwnedDetectionMixin, serve_face_image
from . import openapi
from .errors import ApiError, upload_error, upload_status
from .pagination import Pagination
from .serializers import DetectionFilterSerializer, DetectionSerializer, ModelInfoSerializer, UploadResultSerializer

MULTIPART_OVERHEAD = 1024 * 1024  # room for the boundaries and part headers around the files


@extend_schema_view(get=openapi.LIST, post=openapi.UPLOAD)
class DetectionsView(OwnedDetectionMixin, generics.ListAPIView):
    serializer_class = DetectionSerializer
    pagination_class = Pagination
    parser_classes = [MultiPartParser]

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
        )

    def post(self, request):
        refuse_oversized(request)
        try:
            files = check_batch(request.FILES.getlist("image"))
        except ValidationError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, exc.code, exc.messages[0], "image") from exc
        return upload_response(submit_each(files, request), self.get_serializer_context())


def refuse_oversized(request) -> None:
    """A 413 before the body is read, where it is larger than the most files allowed could make it."""
    limit = settings.DETECTOR_BATCH_MAX_FILES * max_upload_bytes() + MULTIPART_OVERHEAD
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "request_too_large",
            f"The request is larger than {limit / 1024 / 1024:.0f} MB: send at most "
            f"{settings.DETECTOR_BATCH_MAX_FILES} images of up to {settings.DETECTOR_MAX_UPLOAD_MB:g} MB each.",
        )


def upload_response(outcomes, context) -> Response:
    """201 where any file was accepted, else the first file's error and status; every file's fate in results."""
    results = [
        {"index": i, "file_name": o.name, "detection": o.detection, "error": o.rejection and upload_error(o.rejection)}
        for i, o in enumerate(outcomes)
    ]
    data = {"results": UploadResultSerializer(results, many=True, context=context).data}
    if any(o.detection for o in outcomes):
        status = HTTPStatus.CREATED
    else:
        status = upload_status(outcomes[0].rejection)
        data = {"error": data["results"][0]["error"], **data}
    response = Response(data, status=status)
    waits = [o.rejection.retry_after for o in outcomes if o.rejection and o.rejection.retry_after]
    if waits:
        response["Retry-After"] = str(max(waits))
    return response


@extend_schema_view(get=openapi.DETAIL, delete=openapi.DELETE)
class DetectionView(OwnedDetectionMixin, generics.RetrieveDestroyAPIView):
    serializer_class = DetectionSerializer

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


@extend_schema_view(get=openapi.MODEL)
class ModelView(APIView):
    def get(self, request):
        facts = model_facts()
        if facts is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "model_unavailable", "The model bundle is not available.")
        return Response(ModelInfoSerializer({**facts, "loaded": is_loaded()}).data)


# Swagger UI's icons are data: images; its scripts and styles come from this site (drf-spectacular-sidecar).
@method_decorator(csp_update({"img-src": ["data:"]}), name="dispatch")
class DocsView(SpectacularSwaggerSplitView):
    template_name = "api/swagger_ui.html"
