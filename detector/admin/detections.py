"""The detection admin: each upload with its verdict, every model's analysis, its files and the review."""

import uuid

from django.contrib import admin
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .. import converters  # noqa: F401 (URL converters, registered on import)
from ..models import REVIEW_FIELDS, Detection, percent_text
from ..services.detections import delete_detection
from ..services.inference import bundle_facts
from ..serving import report_response, serve_detection_file, serve_face_image, serve_still
from ..templatetags.detector_extras import clock
from . import actions

UPLOAD_FIELDS = (
    "id",
    "original_name",
    "source_url",
    "sha256",
    "image_format",
    "content_type",
    "size_bytes",
    "width",
    "height",
    "kind",
    "duration_seconds",
    "created_at",
    "owner",
    "anonymous_owner",
)


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    # Narrow enough for 1280 px beside the filters; model version and status are filters, not columns.
    list_display = ("thumb", "name", "verdict", "fake_percent_display", "review_verdict", "owner", "created_at")
    list_display_links = ("thumb", "name")
    list_filter = (
        "label",
        "status",
        "kind",
        "review_verdict",
        "model_version",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("original_name", "=sha256")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    # The verdict as people read it on the site: percentages, and the badge with its colour and mark.
    VERDICT_DISPLAY = (
        "verdict",
        "status",
        "fake_percent_display",
        "confidence_display",
        "threshold_display",
        "real_below_display",
        "centre_score_display",
        "model_version",
        "face_found",
        "faces_display",
        "tracks_display",
        "model_label",
        "verdict_reason",
        "analyses_display",
        "provenance_display",
        "report_links",
        "processing_ms",
        "decode_ms",
        "error_message",
    )
    readonly_fields = ("annotated_image", *VERDICT_DISPLAY, *UPLOAD_FIELDS, "reviewed_by", "reviewed_at")
    fieldsets = (
        ("Verdict", {"fields": ("annotated_image", *VERDICT_DISPLAY)}),
        ("Review", {"fields": REVIEW_FIELDS}),
        ("Upload", {"fields": UPLOAD_FIELDS}),
    )
    actions = (actions.mark_reviewed_real, actions.mark_reviewed_fake, actions.reanalyse, actions.export_csv)

    class Media:
        css = {"all": ("detector/faces.css",)}

    def has_add_permission(self, request):
        return False  # detections come from uploads, not from the admin form

    def get_search_results(self, request, queryset, search_term):
        results, distinct = super().get_search_results(request, queryset, search_term)
        try:
            results |= queryset.filter(id=uuid.UUID(search_term.strip()))
        except ValueError:
            pass
        return results, distinct

    def get_urls(self):
        file_view = self.admin_site.admin_view(self.file_view)
        return [
            path("<uuid:pk>/file/<file_variant:variant>/", file_view, name="detector_detection_file"),
            path(
                "<uuid:pk>/report.<report:kind>",
                self.admin_site.admin_view(self.report_view),
                name="detector_detection_report",
            ),
            path(
                "<uuid:pk>/faces/<int:number>/<face_picture:kind>.png",
                self.admin_site.admin_view(self.face_view),
                name="detector_detection_face",
            ),
            path(
                "<uuid:pk>/tracks/<int:track>/stills/<int:number>/<still_picture:kind>",
                self.admin_site.admin_view(self.still_view),
                name="detector_detection_still",
            ),
        ] + super().get_urls()

    def file_view(self, request, pk, variant):
        if not self.has_view_permission(request):
            return HttpResponse(status=404)
        return serve_detection_file(get_object_or_404(Detection, pk=pk), variant)

    def report_view(self, request, pk, kind):
        if not self.has_view_permission(request):
            return HttpResponse(status=404)
        return report_response(get_object_or_404(Detection, pk=pk), kind, bundle_facts())

    def face_view(self, request, pk, number, kind):
        if not self.has_view_permission(request):
            return HttpResponse(status=404)
        return serve_face_image(get_object_or_404(Detection, pk=pk), number, kind)

    def still_view(self, request, pk, track, number, kind):
        if not self.has_view_permission(request):
            return HttpResponse(status=404)
        return serve_still(get_object_or_404(Detection, pk=pk), track, number, kind)

    @admin.display(description="")
    def thumb(self, obj):
        if not obj.thumbnail:
            return ""
        url = reverse("admin:detector_detection_file", args=[obj.pk, "thumbnail"])
        return format_html('<img src="{}" alt="" width="64" height="64" class="admin-thumb">', url)

    @admin.display(description="file", ordering="original_name")
    def name(self, obj):
        text = obj.original_name or str(obj.id)
        text = text if len(text) <= 40 else text[:39] + "…"
        return f"{text} (video, {clock(obj.duration_seconds)})" if obj.is_video else text

    @admin.display(description="verdict", ordering="label")
    def verdict(self, obj):
        return format_html('<span class="badge badge-{}">{}</span>', obj.style, obj.label or obj.get_status_display())

    @admin.display(description="fake probability", ordering="fake_probability")
    def fake_percent_display(self, obj):
        return percent_text(obj.fake_probability)

    @admin.display(description="confidence in the label")
    def confidence_display(self, obj):
        return percent_text(obj.confidence)

    @admin.display(description="Deepfake from")
    def threshold_display(self, obj):
        return "—" if obj.threshold is None else f"{obj.threshold * 100:.1f} %"

    @admin.display(description="Real below")
    def real_below_display(self, obj):
        return "—" if obj.real_below is None else f"{obj.real_below * 100:.1f} %"

    @admin.display(description="centre square's score (no face: not a verdict)")
    def centre_score_display(self, obj):
        return percent_text(obj.centre_score)

    @admin.display(description="report")
    def report_links(self, obj):
        pdf, json = (reverse("admin:detector_detection_report", args=[obj.pk, k]) for k in ("pdf", "json"))
        return format_html('<a href="{}">PDF</a> · <a href="{}">JSON</a>', pdf, json)

    @admin.display(description="provenance")
    def provenance_display(self, obj):
        rows = [
            (f["strength_text"] + (", signed" if f.get("signed") else ""), f["text"]) for f in obj.provenance_findings
        ]
        return format_html_join("", "<div><strong>{}</strong>: {}</div>", rows) if rows else "—"

    @admin.display(description="faces")
    def faces_display(self, obj):
        rows = [
            f"Face {f['number']}: {f['label']}, {f['fake_text']} fake, box {f['x']},{f['y']} {f['w']}×{f['h']} px"
            + (" (decided)" if f["decided"] else "")
            for f in obj.face_boxes()
        ]
        return format_html_join("", "<div>{}</div>", ((r,) for r in rows)) if rows else "—"

    @admin.display(description="analyses by each model version")
    def analyses_display(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{} {}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    a.model_name,
                    a.model_version,
                    " (the verdict shown)" if a.model_version == obj.model_version else "",
                    a.label or a.status,
                    a.fake_text,
                    "; ".join(
                        f"{m.get('title') or m.get('name') or 'model'} {m.get('version', '')}: {m.get('label')}, "
                        f"{percent_text(m.get('fake_probability'))}"
                        for m in a.model_scores or []
                    )
                    or "—",
                    a.analysed_at.strftime("%Y-%m-%d %H:%M") if a.analysed_at else "—",
                )
                for a in obj.analyses.all()
            ),
        )
        if not rows:
            return "—"
        return format_html(
            "<table><thead><tr><th>version</th><th>verdict</th><th>fake probability</th><th>each model</th>"
            "<th>analysed</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="video's face tracks")
    def tracks_display(self, obj):
        if not obj.is_video:
            return "—"
        rows = []
        for t in obj.tracks or []:
            links = format_html_join(
                " ",
                '<a href="{}">{}</a>',
                (
                    (reverse("admin:detector_detection_still", args=[obj.pk, t["id"], n, "image"]), clock(s["seconds"]))
                    for n, s in enumerate(t.get("stills", []), start=1)
                ),
            )
            rows.append(
                (
                    f"Face {t['id']}: {t['label']}, {percent_text(t['fake_probability'])} fake, on screen "
                    f"{clock(t['first_seconds'])}–{clock(t['last_seconds'])} in {len(t['frames'])} frames"
                    + (" (decided)" if t.get("decided") else ""),
                    links,
                )
            )
        if not rows:
            return f"no face in the {obj.frames_sampled or 0} frames sampled"
        return format_html_join("", "<div>{} · stills: {}</div>", rows)

    @admin.display(description="image with faces")
    def annotated_image(self, obj):
        if not obj.preview:
            return "—"
        return render_to_string(
            "detector/_annotated_image.html",
            {
                "detection": obj,
                "faces": obj.face_boxes(),
                "image_url": reverse("admin:detector_detection_file", args=[obj.pk, "preview"]),
                "original_url": reverse("admin:detector_detection_file", args=[obj.pk, "image"]),
                "face_url_name": "admin:detector_detection_face",
            },
        )

    def save_model(self, request, obj, form, change):
        if "review_verdict" in form.changed_data or "review_note" in form.changed_data:
            obj.reviewed_by, obj.reviewed_at = request.user, timezone.now()
        # The review only: an analysis finishing meanwhile keeps its verdict, and a deleted row stays deleted.
        obj.save(update_fields=REVIEW_FIELDS)

    def delete_model(self, request, obj):
        delete_detection(obj)  # the row and, once that is committed, its files; it wins over an analysis in flight

    def delete_queryset(self, request, queryset):
        for detection in queryset:
            delete_detection(detection)
