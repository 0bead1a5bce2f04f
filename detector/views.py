import logging
import secrets
import sys
from http import HTTPStatus

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import TooManyFilesSent
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views import View, defaults
from django.views.generic import DeleteView, DetailView, FormView, ListView, TemplateView

from .dispatch import submit, submit_each, submit_link
from .forms import BatchUploadForm, HistoryFilterForm, LinkForm, UploadForm, refused_form
from .middleware import DATABASE_DOWN, unavailable
from .models import Detection
from .refusals import DETECTOR_DOWN, STORAGE_FAILED, Refusal
from .services import comparison, limits, overview, registry, reports, sightings, timeline, verdicts
from .services.detections import delete_detection
from .services.fetch import FetchRefused
from .services.inference import DetectorUnavailable, bundle_facts, get_detector
from .services.privacy import export_zip
from .serving import (
    OwnedDetectionMixin,
    report_response,
    serve_detection_file,
    serve_face_image,
    serve_still,
    still_of,
    storage_errors,
)

log = logging.getLogger(__name__)


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def refusal_json(refusal: Refusal, status: int | None = None) -> JsonResponse:
    """A refusal in the API's one error shape, with its status and, where it has one, Retry-After."""
    response = JsonResponse(refusal.body(), status=status or refusal.status)
    if refusal.retry_after:
        response["Retry-After"] = str(refusal.retry_after)
    return response


class UploadFormMixin:
    """A page whose POST carries uploads. ``middleware.UploadGuardMiddleware`` asks ``max_files()`` and answers
    an oversized or over-the-rate request with ``refused()`` before its body is read or its CSRF token parsed."""

    @classmethod
    def max_files(cls) -> int:
        return 1

    @classmethod
    def refused(cls, request, refusal: Refusal):
        if wants_json(request):
            return refusal_json(refusal)
        view = cls()
        view.setup(request)
        form = refused_form(cls.form_class, refusal.message)
        response = view.form_invalid(form, status=refusal.status, counted=True)
        if refusal.retry_after:
            response["Retry-After"] = str(refusal.retry_after)
        return response

    def form_invalid(self, form, status=HTTPStatus.BAD_REQUEST, counted=False):
        """The form again with its error (or the error as JSON). A file refused for its own fault counts against an
        anonymous client's allowance (``limits.count_refusal``), unless it was counted when it was refused."""
        if not counted and status < HTTPStatus.INTERNAL_SERVER_ERROR and status != HTTPStatus.TOO_MANY_REQUESTS:
            limits.count_refusal(self.request)
        if wants_json(self.request):
            field, errors = next(iter(form.errors.as_data().items()))
            return refusal_json(Refusal.from_validation_error(errors[0], None if field == "__all__" else field), status)
        return self.render_to_response(self.get_context_data(form=form), status=status)


class UploadPageMixin:
    """The upload page's context, whichever of its two forms (a file, a link) was posted, and what both answer."""

    def detector_down(self, form):
        """A 503 with the form where the model cannot be loaded now; None where it can."""
        try:
            get_detector()
        except DetectorUnavailable:
            form.add_error(None, DETECTOR_DOWN)
            return self.form_invalid(form, status=HTTPStatus.SERVICE_UNAVAILABLE)
        return None

    def created(self, detection):
        if wants_json(self.request):
            return JsonResponse(status_summary(detection), status=HTTPStatus.CREATED)
        return redirect(detection.get_absolute_url())

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", UploadForm())
        if settings.DETECTOR_FETCH_URLS:
            context.setdefault("link_form", LinkForm())
        context["recent"] = Detection.objects.owned_by(self.request).recent()[:4]
        context["allowance"] = limits.allowance(self.request)
        return context


class UploadView(UploadPageMixin, UploadFormMixin, FormView):
    template_name = "detector/upload.html"
    form_class = UploadForm

    def form_valid(self, form):
        if down := self.detector_down(form):
            return down
        try:
            detection = submit(form.checked, form.cleaned_data["image"].name, self.request)
        except OSError:
            log.exception("upload could not be stored")
            form.add_error(None, STORAGE_FAILED)
            return self.form_invalid(form, status=HTTPStatus.SERVICE_UNAVAILABLE)
        return self.created(detection)


class LinkUploadView(UploadPageMixin, UploadFormMixin, FormView):
    """The upload page's second form: a link to a file, which the server fetches and checks as an upload."""

    template_name = "detector/upload.html"
    form_class = LinkForm

    def get(self, request, *args, **kwargs):
        return redirect("detector:upload")

    def get_context_data(self, **kwargs):
        kwargs["link_form"] = kwargs.pop("form", None) or self.get_form()
        return super().get_context_data(**kwargs)

    def form_valid(self, form):
        if down := self.detector_down(form):
            return down
        try:
            outcome = submit_link(form.cleaned_data["url"], self.request)
        except FetchRefused as exc:
            form.add_error("url", str(exc))
            return self.form_invalid(form, status=exc.status)
        if outcome.refusal:
            form.add_error("url", outcome.refusal.message)
            return self.form_invalid(form, status=outcome.refusal.status, counted=True)
        return self.created(outcome.detection)


class BatchUploadView(UploadFormMixin, FormView):
    """Many images at once. With JavaScript each file is posted to the upload view on its own, with its own
    progress; without, they come here in one request and the page lists each file's verdict or error."""

    template_name = "detector/batch.html"
    form_class = BatchUploadForm

    @classmethod
    def max_files(cls) -> int:
        return settings.DETECTOR_BATCH_MAX_FILES

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["allowance"] = limits.allowance(self.request)
        return context

    def form_valid(self, form):
        try:
            outcomes = submit_each(form.cleaned_data["images"], self.request)
        except DetectorUnavailable:
            form.add_error(None, DETECTOR_DOWN)
            return self.form_invalid(form, status=HTTPStatus.SERVICE_UNAVAILABLE)
        checked = sum(1 for outcome in outcomes if outcome.detection)
        unsent = sum(1 for o in outcomes if o.refusal and o.refusal.code == "rate_limited")
        context = self.get_context_data(
            form=self.form_class(),
            outcomes=outcomes,
            checked_count=checked,
            rejected_count=len(outcomes) - checked - unsent,
            unsent_count=unsent,
        )
        return self.render_to_response(context, status=batch_status(outcomes))


def batch_status(outcomes) -> int:
    """200 where any file was taken; else 503 where the service failed them (storage, limits unavailable), else 400
    (each file's own fault is shown beside it)."""
    if any(o.detection for o in outcomes):
        return HTTPStatus.OK
    if any(o.refusal.status == HTTPStatus.SERVICE_UNAVAILABLE for o in outcomes):
        return HTTPStatus.SERVICE_UNAVAILABLE
    if all(o.refusal.code == "rate_limited" for o in outcomes):
        return HTTPStatus.TOO_MANY_REQUESTS
    return HTTPStatus.BAD_REQUEST


def status_summary(detection: Detection) -> dict:
    """What a page polling a detection needs: where it stands and, once done, the verdict."""
    return {
        "id": str(detection.id),
        "status": detection.status,
        "status_display": detection.get_status_display(),
        "url": detection.get_absolute_url(),
        "status_url": reverse("detector:status", args=[detection.id]),
        "label": detection.label,
        "style": detection.style,
        "fake_percent": detection.fake_percent,
        "fake_text": detection.fake_text if detection.is_judged else None,
        "thumbnail": reverse("detector:thumbnail", args=[detection.id]),
        "kind": detection.kind,
        "frames_sampled": detection.frames_sampled,
        "frames_planned": detection.frames_planned,
        "model_version": detection.model_version,
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
        detection = self.object
        context["bundle"] = facts = bundle_facts()
        context["same_model"] = bool(facts) and facts["meta"].version == detection.model_version
        context["explanation"] = verdicts.explain(detection, facts)
        context["thresholds"] = verdicts.thresholds_of(detection, facts)
        context["faces"] = detection.face_boxes()
        context["versions"] = comparison.versions_of(detection)
        context["sightings"] = sightings.earlier(detection)
        context["share_days"] = settings.DETECTOR_SHARE_DAYS
        context["video_fps"] = settings.DETECTOR_VIDEO_FPS
        context["video_max_frames"] = settings.DETECTOR_VIDEO_MAX_FRAMES
        if detection.share_key:
            context["share_token"] = reports.share_token(detection)
        return context


REVIEW_PERMISSION = "detector.view_detection"  # what the admin asks of a reviewer before it lists every detection


class OverviewScopeMixin:
    """The owner's detections, or everyone's for reviewers (the admin's own permission) who ask for ``?scope=all``."""

    def detections(self):
        if self.request.GET.get("scope") == "all":
            if not self.request.user.has_perm(REVIEW_PERMISSION):
                raise Http404("only reviewers see everyone's detections")
            return Detection.objects.all()
        return Detection.objects.owned_by(self.request)


class OverviewView(OverviewScopeMixin, TemplateView):
    template_name = "detector/overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        qs = self.detections()
        context.update(counts=overview.label_counts(qs), total=qs.count(), scope=self.request.GET.get("scope", ""))
        context["reviewer"] = self.request.user.has_perm(REVIEW_PERMISSION)
        context["charts"] = [
            ("labels", "Bar chart of verdicts per day"),
            ("scores", "Histogram of the fake probabilities of judged faces, with the Deepfake threshold marked"),
        ]
        context["agreement"] = sorted(registry.review_agreement(qs).values(), key=lambda r: r["version"])
        return context


class OverviewChartView(OverviewScopeMixin, View):
    charts = {"labels": overview.labels_over_time_svg, "scores": overview.score_distribution_svg}

    def get(self, request, chart):
        narrow = self.request.GET.get("size") == "narrow"  # a phone's: taller, its text readable at 360 px
        response = HttpResponse(self.charts[chart](self.detections(), narrow), content_type="image/svg+xml")
        response["Cache-Control"] = "private, no-cache"
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response


class AboutModelView(TemplateView):
    """What the model was trained on, how it was measured, and where it is weak."""

    template_name = "detector/about_model.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["bundle"] = facts = bundle_facts()
        metrics = facts and facts["metrics"]
        if metrics:  # one row per source: its metrics, and what its images were told (older files lack that)
            told = metrics.get("verdicts") or {"overall": None, "by_source": {}}  # older files lack it
            context["test_rows"] = [("all", metrics["overall"], told["overall"])] + [
                (name, m, told["by_source"].get(name)) for name, m in metrics.get("by_source", {}).items()
            ]
        return context


class DetectionReportView(OwnedDetectionMixin, View):
    """The owner's report of a detection: ``pdf`` or ``json``."""

    def get(self, request, pk, kind):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        return report_response(detection, kind, bundle_facts())


class ShareView(OwnedDetectionMixin, View):
    """POST: make (or keep) the read-only link of a detection's report; with ``revoke``, stop every link to it."""

    def post(self, request, pk, revoke=False):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        if revoke:
            detection.share_key = ""
            messages.success(request, "The share link no longer works; nobody can open the report with it.")
        else:
            detection.share_key = detection.share_key or secrets.token_hex(16)
            messages.success(
                request, f"Anyone with the link can read this report for {settings.DETECTOR_SHARE_DAYS} days."
            )
        detection.save(update_fields=["share_key"])
        return redirect(detection.get_absolute_url() + "#share")


class SharedReportMixin:
    """A report opened by its signed share link, without login; nothing else of the owner's is reachable."""

    def shared(self, token):
        detection = reports.shared_detection(token)
        if detection is None:
            raise Http404("this link has expired or was revoked")
        return detection


class SharedReportView(SharedReportMixin, TemplateView):
    template_name = "detector/shared_report.html"

    def get_context_data(self, token, **kwargs):
        context = super().get_context_data(**kwargs)
        detection = self.shared(token)
        facts = bundle_facts()
        context.update(
            detection=detection,
            token=token,
            report=reports.document(detection, facts),
            explanation=verdicts.explain(detection, facts),
            faces=detection.face_boxes(),
        )
        return context


class SharedReportDownloadView(SharedReportMixin, View):
    """The shared report as a download: ``pdf`` or ``json`` (the route takes no other kind)."""

    def get(self, request, token, kind):
        return report_response(self.shared(token), kind, bundle_facts())


class SharedImageView(SharedReportMixin, View):
    """The shared report's picture: the preview with each judged face boxed and numbered."""

    def get(self, request, token):
        detection = self.shared(token)
        with storage_errors():
            response = HttpResponse(reports.boxed_preview(detection), content_type="image/jpeg")
        response["X-Content-Type-Options"] = "nosniff"
        return response


class SharedTimelineView(SharedReportMixin, View):
    """A shared video report's timeline, as SVG."""

    def get(self, request, token):
        detection = self.shared(token)
        if not detection.is_video:
            raise Http404("not a video")
        return svg_response(timeline.timeline_svg(detection, request.GET.get("size") == "narrow"))


class SharedStillFileView(SharedReportMixin, View):
    """A shared video report's still (the frame, its face boxed) or its face's heatmap."""

    def get(self, request, token, track, number, kind):
        return serve_still(self.shared(token), track, number, kind)


class SharedFaceImageView(SharedReportMixin, View):
    """A judged face's heatmap (or crop), in the shared report."""

    def get(self, request, token, number, kind="heatmap"):
        return serve_face_image(self.shared(token), number, kind)


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


class FacePageMixin:
    """A judged face's own page: its crop beside its heatmap, with the colour scale and what the map means."""

    template_name = "detector/face.html"

    def face_context(self, detection, number: int, urls: dict) -> dict:
        face = next((f for f in detection.face_boxes() if f["index"] == number), None)
        if face is None:
            raise Http404("no such face")
        facts = bundle_facts()
        same = bool(facts) and facts["meta"].version == detection.model_version
        return {"detection": detection, "face": face, "draws_heatmaps": not same or facts["draws_heatmaps"], **urls}


class FacePageView(OwnedDetectionMixin, FacePageMixin, TemplateView):
    def get_context_data(self, pk, number, **kwargs):
        detection = get_object_or_404(self.get_queryset(), pk=pk)
        urls = {
            "back_url": detection.get_absolute_url() + f"#face-{number}",
            "crop_url": reverse("detector:face_image", args=[pk, number, "crop"]),
            "heatmap_url": reverse("detector:face_image", args=[pk, number, "heatmap"]),
        }
        return {**super().get_context_data(**kwargs), **self.face_context(detection, number, urls)}


class SharedFacePageView(SharedReportMixin, FacePageMixin, TemplateView):
    def get_context_data(self, token, number, **kwargs):
        detection = self.shared(token)
        urls = {
            "back_url": reverse("detector:shared", args=[token]) + f"#face-{number}",
            "crop_url": reverse("detector:shared_face_image", args=[token, number, "crop"]),
            "heatmap_url": reverse("detector:shared_face_image", args=[token, number, "heatmap"]),
        }
        return {**super().get_context_data(**kwargs), **self.face_context(detection, number, urls)}


class StillFileView(OwnedDetectionMixin, View):
    """A video still (the frame with its face boxed) or its face's heatmap."""

    def get(self, request, pk, track, number, kind):
        return serve_still(get_object_or_404(self.get_queryset(), pk=pk), track, number, kind)


class StillView(OwnedDetectionMixin, DetailView):
    """One of a track's most suspicious frames, full size, beside its face's heatmap."""

    template_name = "detector/still.html"
    context_object_name = "detection"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        track, number = self.kwargs["track"], self.kwargs["number"]
        context.update(track=track, number=number, still=still_of(self.object, track, number))
        return context


class TimelineView(OwnedDetectionMixin, View):
    """A video's timeline chart, as SVG."""

    def get(self, request, pk):
        detection = get_object_or_404(self.get_queryset(), pk=pk, kind="video")
        return svg_response(timeline.timeline_svg(detection, request.GET.get("size") == "narrow"))


def svg_response(svg: bytes) -> HttpResponse:
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
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


class ExportView(View):
    """All of the requester's checks as one ZIP: ``checks.json`` and the originals as uploaded, streamed."""

    def get(self, request):
        detections = Detection.objects.owned_by(request).recent()
        response = StreamingHttpResponse(export_zip(detections.iterator()), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="deepfake-checks-{timezone.now():%Y%m%d}.zip"'
        response["Cache-Control"] = "private, no-store"
        return response


class DetectionDeleteView(OwnedDetectionMixin, DeleteView):
    template_name = "detector/confirm_delete.html"
    context_object_name = "detection"
    success_url = reverse_lazy("detector:history")

    def form_valid(self, form):
        delete_detection(self.object)
        messages.success(self.request, f"Deleted {self.object.original_name or 'the detection'} and its files.")
        return redirect(self.get_success_url())


def favicon(request):
    """``/favicon.ico``, which browsers ask for on pages that name no icon (the admin's): the site's own."""
    return redirect(static("detector/favicon.svg"), permanent=True)


def bad_request(request, exception=None):
    """``handler400``: a request Django refused while reading it (too many files, a malformed body, a bad Host),
    answered in the API's one error shape where the client asks for JSON, else the site's page."""
    if wants_json(request) or request.path.startswith("/api/"):
        if isinstance(exception, TooManyFilesSent):
            most = settings.DETECTOR_BATCH_MAX_FILES
            refusal = Refusal("too_many_files", f"The request has too many files: send at most {most} at a time.")
        else:
            refusal = Refusal("bad_request", "The request is malformed.", field=None)
        return refusal_json(refusal, HTTPStatus.BAD_REQUEST)
    return defaults.bad_request(request, exception)


def server_error(request):
    """``handler500``: a database that is down is a 503, wherever it failed; anything else the plain 500 page.

    Neither page is rendered with the request, so neither touches the database or the session.
    """
    if isinstance(sys.exc_info()[1], DATABASE_DOWN):
        return unavailable(maybe_stored=request.method == "POST")
    return HttpResponse(render_to_string("500.html"), status=HTTPStatus.INTERNAL_SERVER_ERROR)
