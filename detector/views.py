import logging
from http import HTTPStatus

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse, reverse_lazy
from django.views import View
from django.views.generic import DeleteView, DetailView, FormView, ListView, TemplateView

from .forms import BatchUploadForm, HistoryFilterForm, UploadForm
from .models import Detection
from .services import overview
from .services.batch import submit_each
from .services.detections import DETECTOR_DOWN, STORAGE_FAILED, delete_detection, submit
from .services.explanations import ExplanationUnavailable, face_image
from .services.inference import DetectorUnavailable, get_detector, model_facts
from .services.limits import seconds_until_upload_allowed, too_many_uploads

log = logging.getLogger(__name__)


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


class OwnedDetectionMixin:
    """Every per-detection view sees only the requester's own detections: others are a 404."""

    def get_queryset(self):
        return Detection.objects.owned_by(self.request)


class UploadView(FormView):
    template_name = "detector/upload.html"
    form_class = UploadForm

    def post(self, request, *args, **kwargs):
        wait = seconds_until_upload_allowed(request)
        if wait is None:
            return super().post(request, *args, **kwargs)
        form = self.get_form()
        form.errors.clear()
        form.add_error(None, too_many_uploads(wait))
        response = self.form_invalid(form, status=HTTPStatus.TOO_MANY_REQUESTS)
        response["Retry-After"] = str(wait)
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["recent"] = Detection.objects.owned_by(self.request).recent()[:4]
        return context

    def form_valid(self, form):
        try:
            get_detector()
        except DetectorUnavailable:
            form.add_error(None, DETECTOR_DOWN)
            return self.form_invalid(form, status=HTTPStatus.SERVICE_UNAVAILABLE)
        try:
            detection = submit(form.checked, form.cleaned_data["image"].name, self.request)
        except OSError:
            log.exception("upload could not be stored")
            form.add_error(None, STORAGE_FAILED)
            return self.form_invalid(form, status=HTTPStatus.SERVICE_UNAVAILABLE)
        url = detection.get_absolute_url()
        if wants_json(self.request):
            return JsonResponse(status_summary(detection), status=HTTPStatus.CREATED)
        return redirect(url)

    def form_invalid(self, form, status=HTTPStatus.BAD_REQUEST):
        if wants_json(self.request):
            errors = {field: [e["message"] for e in errs] for field, errs in form.errors.get_json_data().items()}
            return JsonResponse({"errors": errors}, status=status)
        return self.render_to_response(self.get_context_data(form=form), status=status)


class BatchUploadView(FormView):
    """Many images at once. With JavaScript each file is posted to the upload view on its own, with its own
    progress; without, they come here in one request and the page lists each file's verdict or error."""

    template_name = "detector/batch.html"
    form_class = BatchUploadForm

    def form_valid(self, form):
        try:
            outcomes = submit_each(form.cleaned_data["images"], self.request)
        except DetectorUnavailable:
            form.add_error(None, DETECTOR_DOWN)
            return self.form_invalid(form, status=HTTPStatus.SERVICE_UNAVAILABLE)
        checked = sum(1 for outcome in outcomes if outcome.detection)
        context = self.get_context_data(
            form=self.form_class(), outcomes=outcomes, checked_count=checked, rejected_count=len(outcomes) - checked
        )
        return self.render_to_response(context, status=HTTPStatus.OK if checked else HTTPStatus.BAD_REQUEST)

    def form_invalid(self, form, status=HTTPStatus.BAD_REQUEST):
        return self.render_to_response(self.get_context_data(form=form), status=status)


def status_summary(detection: Detection) -> dict:
    """What a page polling a detection needs: where it stands and, once done, the verdict."""
    return {
        "id": str(detection.id),
        "status": detection.status,
        "status_display": detection.get_status_display(),
        "url": detection.get_absolute_url(),
        "status_url": reverse("detector:status", args=[detection.id]),
        "label": detection.label,
        "fake_percent": detection.fake_percent,
        "thumbnail": reverse("detector:thumbnail", args=[detection.id]),
    }


class DetectionStatusView(OwnedDetectionMixin, View):
    """A small JSON answer for pages that wait for a queued analysis."""

    def get(self, request, pk):
        response = JsonResponse(status_summary(get_object_or_404(self.get_queryset(), pk=pk)))
        response["Cache-Control"] = "no-store"
        return response


class DetectionDetailView(OwnedDetectionMixin, DetailView):
    template_name = "detector/result.html"
    context_object_name = "detection"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["model"] = model_facts()
        return context


class OverviewScopeMixin:
    """The owner's detections, or everyone's for staff who ask for ``?scope=all``."""

    def detections(self):
        if self.request.GET.get("scope") == "all":
            if not self.request.user.is_staff:
                raise Http404("only reviewers see everyone's detections")
            return Detection.objects.all()
        return Detection.objects.owned_by(self.request)


class OverviewView(OverviewScopeMixin, TemplateView):
    template_name = "detector/overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        qs = self.detections()
        context.update(counts=overview.label_counts(qs), total=qs.count(), scope=self.request.GET.get("scope", ""))
        return context


class OverviewChartView(OverviewScopeMixin, View):
    charts = {"labels": overview.labels_over_time_svg, "scores": overview.score_distribution_svg}

    def get(self, request, chart):
        if chart not in self.charts:
            raise Http404("no such chart")
        response = HttpResponse(self.charts[chart](self.detections()), content_type="image/svg+xml")
        response["Cache-Control"] = "private, no-cache"
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response


class AboutModelView(TemplateView):
    """What the model was trained on, how it was measured, and where it is weak."""

    template_name = "detector/about_model.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["model"] = facts = model_facts()
        metrics = facts and facts["metrics"]
        if metrics:  # one row per source: its metrics, and what its images were told (older files lack that)
            told = metrics.get("verdicts") or {"overall": None, "by_source": {}}
            context["test_rows"] = [("all", metrics["overall"], told["overall"])] + [
                (name, m, told["by_source"].get(name)) for name, m in metrics["by_source"].items()
            ]
        return context


class DetectionFileView(OwnedDetectionMixin, View):
    """Serves the original bytes or a re-encoded copy, only to the owner, never sniffable."""

    variant = "image"

    def get(self, request, pk):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        return serve_detection_file(detection, self.variant)


class FaceImageView(OwnedDetectionMixin, View):
    """A judged face's crop or heatmap, made on first view."""

    def get(self, request, pk, number, kind):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        return serve_face_image(detection, number, kind)


def serve_face_image(detection: Detection, number: int, kind: str):
    try:
        name = face_image(detection, number, kind)
    except (ExplanationUnavailable, DetectorUnavailable) as exc:
        raise Http404(str(exc)) from exc
    response = FileResponse(detection.image.storage.open(name, "rb"), content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def serve_detection_file(detection: Detection, variant: str) -> FileResponse:
    field = getattr(detection, variant)
    if variant == "image":
        content_type = detection.content_type
        filename = f"{detection.id}.{field.name.rsplit('.', 1)[-1]}"
    else:
        content_type, filename = "image/jpeg", f"{detection.id}-{variant}.jpg"
    response = FileResponse(field.open("rb"), content_type=content_type, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


class HistoryView(ListView):
    template_name = "detector/history.html"
    context_object_name = "detections"
    paginate_by = 20

    def get_queryset(self):
        qs = Detection.objects.owned_by(self.request).recent()
        self.filter_form = HistoryFilterForm(self.request.GET or None)
        if self.filter_form.is_valid():
            data = self.filter_form.cleaned_data
            qs = qs.with_label(data["label"]).created_between(data["start"], data["end"]).search(data["q"])
        return qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["filter_form"] = self.filter_form
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query_string"] = query.urlencode()
        return context


class DetectionDeleteView(OwnedDetectionMixin, DeleteView):
    template_name = "detector/confirm_delete.html"
    context_object_name = "detection"
    success_url = reverse_lazy("detector:history")

    def form_valid(self, form):
        delete_detection(self.object)
        messages.success(self.request, f"Deleted {self.object.original_name or 'the detection'} and its files.")
        return redirect(self.get_success_url())
