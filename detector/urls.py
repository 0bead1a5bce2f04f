from django.urls import path

from . import converters, views  # noqa: F401 (converters: registered on import)

app_name = "detector"

urlpatterns = [
    path("", views.UploadView.as_view(), name="upload"),
    path("link/", views.LinkUploadView.as_view(), name="upload_link"),
    path("batch/", views.BatchUploadView.as_view(), name="batch"),
    path("history/", views.HistoryView.as_view(), name="history"),
    path("history/export.zip", views.ExportView.as_view(), name="export"),
    path("about-the-model/", views.AboutModelView.as_view(), name="about_model"),
    path("overview/", views.OverviewView.as_view(), name="overview"),
    path("overview/<chart:chart>.svg", views.OverviewChartView.as_view(), name="overview_chart"),
    path("detections/<uuid:pk>/", views.DetectionDetailView.as_view(), name="result"),
    path("detections/<uuid:pk>/status/", views.DetectionStatusView.as_view(), name="status"),
    path("detections/<uuid:pk>/image/", views.DetectionFileView.as_view(variant="image"), name="image"),
    path("detections/<uuid:pk>/preview.jpg", views.DetectionFileView.as_view(variant="preview"), name="preview"),
    path("detections/<uuid:pk>/thumbnail.jpg", views.DetectionFileView.as_view(variant="thumbnail"), name="thumbnail"),
    path("detections/<uuid:pk>/delete/", views.DetectionDeleteView.as_view(), name="delete"),
    path("detections/<uuid:pk>/report.<report:kind>", views.DetectionReportView.as_view(), name="report"),
    path("detections/<uuid:pk>/share/", views.ShareView.as_view(), name="share"),
    path("detections/<uuid:pk>/share/revoke/", views.ShareView.as_view(), {"revoke": True}, name="share_revoke"),
    path("shared/<str:token>/", views.SharedReportView.as_view(), name="shared"),
    path("shared/<str:token>/image.jpg", views.SharedImageView.as_view(), name="shared_image"),
    path(
        "shared/<str:token>/faces/<int:number>/<face_picture:kind>.png",
        views.SharedFaceImageView.as_view(),
        name="shared_face_image",
    ),
    path("shared/<str:token>/faces/<int:number>/", views.SharedFacePageView.as_view(), name="shared_face"),
    path("shared/<str:token>/timeline.svg", views.SharedTimelineView.as_view(), name="shared_timeline"),
    path(
        "shared/<str:token>/tracks/<int:track>/stills/<int:number>/<still_picture:kind>",
        views.SharedStillFileView.as_view(),
        name="shared_still_file",
    ),
    path("detections/<uuid:pk>/faces/<int:number>/", views.FacePageView.as_view(), name="face"),
    path("shared/<str:token>/report.<report:kind>", views.SharedReportDownloadView.as_view(), name="shared_report"),
    path(
        "detections/<uuid:pk>/faces/<int:number>/<face_picture:kind>.png",
        views.FaceImageView.as_view(),
        name="face_image",
    ),
    path("detections/<uuid:pk>/timeline.svg", views.TimelineView.as_view(), name="timeline"),
    path("detections/<uuid:pk>/tracks/<int:track>/stills/<int:number>/", views.StillView.as_view(), name="still"),
    path(
        "detections/<uuid:pk>/tracks/<int:track>/stills/<int:number>/<still_picture:kind>",
        views.StillFileView.as_view(),
        name="still_file",
    ),
]
