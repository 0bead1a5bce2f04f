"""What teams wire in, in the admin: callback addresses with every delivery and attempt, and API keys."""

from django.contrib import admin
from django.utils.html import format_html_join

from ..models import ApiToken, Webhook, WebhookDelivery


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ("created_at", "event", "detection", "status", "attempts", "next_attempt_at", "delivered_at", "log")
    readonly_fields = fields
    extra = 0
    max_num = 0
    ordering = ("-created_at", "-id")
    show_change_link = False

    @admin.display(description="attempts: time, answer")
    def log(self, obj):
        rows = [
            (a.at.strftime("%Y-%m-%d %H:%M:%S"), a.status_code or "—", "ok" if a.ok else a.error)
            for a in obj.attempt_log.all()
        ]
        return format_html_join("", "<div>{}: {} {}</div>", rows) if rows else "—"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("url", "user", "created_at", "active", "failing_since", "disabled_at")
    list_filter = (("disabled_at", admin.EmptyFieldListFilter),)
    search_fields = ("url", "user__username")
    readonly_fields = ("user", "url", "created_at", "failing_since", "disabled_at", "disabled_reason")
    exclude = ("secret_encrypted",)  # never shown, even encrypted
    inlines = [DeliveryInline]

    @admin.display(boolean=True)
    def active(self, obj):
        return obj.active

    def has_add_permission(self, request):
        return False  # registered by their owners (the account page, the API)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at")
    exclude = ("key_hash",)
    actions = ("revoke",)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} key(s) revoked.")

    def has_add_permission(self, request):
        return False  # made by their owners (/accounts/tokens/) or manage.py create_api_token
