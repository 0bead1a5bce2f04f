"""The detection admin's actions: reviewers' findings, re-analysis by another version, CSV export."""

import csv

from django.contrib import admin, messages
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ..dispatch import BrokerUnavailable, start_reanalysis
from ..ml.inference.bundle import BundleError
from ..models import REVIEW_FIELDS, VERDICT_FIELDS, ReviewVerdict
from ..services import reanalysis, registry

# One row per detection: who uploaded what, the verdict as the API gives it, and the review.
CSV_FIELDS = ("id", "created_at", "original_name", "sha256", *VERDICT_FIELDS, "owner", *REVIEW_FIELDS)


def _mark(modeladmin, request, queryset, verdict):
    count = queryset.update(review_verdict=verdict, reviewed_by=request.user, reviewed_at=timezone.now())
    modeladmin.message_user(
        request, f"Marked {count} detection(s) as {ReviewVerdict(verdict).label.lower()}.", messages.SUCCESS
    )


@admin.action(description="Mark reviewed as real", permissions=["change"])
def mark_reviewed_real(modeladmin, request, queryset):
    _mark(modeladmin, request, queryset, ReviewVerdict.REAL)


@admin.action(description="Mark reviewed as fake", permissions=["change"])
def mark_reviewed_fake(modeladmin, request, queryset):
    _mark(modeladmin, request, queryset, ReviewVerdict.FAKE)


@admin.action(description="Re-analyse with a model version…", permissions=["change"])
def reanalyse(modeladmin, request, queryset):
    """Choose the version (the active one first), then queue the selected uploads it has not analysed."""
    usable = [v for v in registry.versions() if v.usable]
    active = registry.active_path().resolve()
    usable.sort(key=lambda v: v.path.resolve() != active)
    if request.POST.get("apply"):
        chosen = {str(v.path): v for v in usable}.get(request.POST.get("bundle", ""))
        if chosen is None:
            modeladmin.message_user(request, "Choose one of the model versions listed.", messages.ERROR)
            return None
        try:
            run, ids = reanalysis.plan(chosen.path, detections=queryset, user=request.user)
            where = start_reanalysis(run, ids) if ids else ""
        except (BundleError, BrokerUnavailable) as exc:
            modeladmin.message_user(request, f"Nothing was queued: {exc}", messages.ERROR)
            return None
        link = reverse("admin:detector_reanalysis_change", args=[run.pk])
        skipped = queryset.count() - run.total
        modeladmin.message_user(
            request,
            format_html(
                '{} upload(s) queued for {} {} ({}){}. <a href="{}">Progress</a>',
                run.total,
                run.name,
                run.version,
                where or "nothing to do",
                f"; {skipped} left out: analysed by that version already, or not finished" if skipped else "",
                link,
            ),
            messages.SUCCESS,
        )
        return None
    return TemplateResponse(
        request,
        "admin/detector/reanalyse.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Re-analyse with a model version",
            "queryset": queryset,
            "versions": usable,
            "active": active,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        },
    )


@admin.action(description="Export selected as CSV", permissions=["view"])
def export_csv(modeladmin, request, queryset):
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="detections-{timezone.now():%Y%m%d-%H%M}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_FIELDS)
    for d in queryset.select_related("owner", "reviewed_by"):
        writer.writerow([_csv_safe(getattr(d, f)) for f in CSV_FIELDS])
    return response


def _csv_safe(value):
    """Neutralise spreadsheet formulas in user-supplied text (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
