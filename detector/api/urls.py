from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from .. import converters  # noqa: F401 (registered on import)
from . import errors, views

app_name = "api"

urlpatterns = [
    path("v1/detections/", views.DetectionsView.as_view(), name="detections"),
    path("v1/detections/<uuid:pk>/", views.DetectionView.as_view(), name="detection"),
    path(
        "v1/detections/<uuid:pk>/faces/<int:number>/<face_picture:kind>.png",
        views.FaceImageView.as_view(),
        name="face_image",
    ),
    path(
        "v1/detections/<uuid:pk>/tracks/<int:track>/stills/<int:number>/<still_picture:kind>",
        views.StillView.as_view(),
        name="still",
    ),
    path("v1/detections/<uuid:pk>/report.<report:kind>", views.ReportView.as_view(), name="report"),
    path("v1/model/", views.ModelView.as_view(), name="model"),
    path("v1/webhooks/", views.WebhooksView.as_view(), name="webhooks"),
    path("v1/webhooks/<int:pk>/", views.WebhookView.as_view(), name="webhook"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", views.DocsView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"", errors.not_found),
]
