from django.contrib import admin
from django.urls import include, path

from detector import health, views

handler400 = "detector.views.bad_request"
handler500 = "detector.views.server_error"

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's, the API docs'): the site's own.
    path("favicon.ico", views.favicon),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/", include("detector.account_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("detector.api.urls")),
    path("", include("detector.urls")),
]
