"""The model versions in the admin: which bundle serves and the history of activations, and the re-analysis batches."""

from pathlib import Path

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html

from ..ml.inference.bundle import BundleError
from ..models import ModelActivation, Reanalysis
from ..services import activation, registry


@admin.register(ModelActivation)
class ModelActivationAdmin(admin.ModelAdmin):
    """The model versions: each bundle with its test metrics and how reviewers found its verdicts; activating one
    (or an earlier one again, to roll back) changes the next verdict in every process, without a restart."""

    list_display = ("name", "version", "activated_by", "activated_at")
    change_list_template = "admin/detector/model_versions.html"

    def has_add_permission(self, request):
        return False  # a version is activated from the list, after its checks

    def has_change_permission(self, request, obj=None):
        return False  # the history is what served when: never rewritten

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("activate/", self.admin_site.admin_view(self.activate_view), name="detector_modelactivation_activate")
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        active = registry.active_path().resolve()
        agreement = registry.review_agreement()
        rows = [
            {"version": v, "active": v.path.resolve() == active, "agreement": agreement.get(v.version)}
            for v in registry.versions()
        ]
        extra = {
            "versions": rows,
            "history": ModelActivation.objects.select_related("activated_by")[:50],
            "can_activate": request.user.has_perm("detector.add_modelactivation"),
            "title": "Model versions",
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def activate_view(self, request):
        if request.method != "POST":
            return redirect("admin:detector_modelactivation_changelist")
        if not request.user.has_perm("detector.add_modelactivation"):
            raise PermissionDenied
        wanted = request.POST.get("bundle", "")
        try:
            activated = activation.activate(Path(wanted), request.user)
        except BundleError as exc:
            self.message_user(request, f"Not activated: {exc}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Version {activated.name} {activated.version} now serves: the next analysis in every web process "
                "and worker uses it.",
                messages.SUCCESS,
            )
        return redirect("admin:detector_modelactivation_changelist")


@admin.register(Reanalysis)
class ReanalysisAdmin(admin.ModelAdmin):
    """Batches of past uploads analysed again by one version, and how far each has gone."""

    list_display = (
        "name",
        "version",
        "criteria",
        "progress",
        "analysed",
        "failed",
        "skipped",
        "requested_by",
        "requested_at",
        "finished_at",
    )
    readonly_fields = ("bundle", *list_display)
    fields = readonly_fields

    def has_add_permission(self, request):
        return False  # queued from the detections' action or `manage.py reanalyse`

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what was re-analysed when, and by whom

    @admin.display(description="progress")
    def progress(self, obj):
        return format_html(
            '<progress max="100" value="{}"></progress> {} of {}{}',
            obj.progress_percent,
            obj.handled,
            obj.total,
            "" if obj.finished_at else " (running)",
        )
