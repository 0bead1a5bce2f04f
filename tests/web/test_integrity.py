"""Data that must stay gone or stay whole: a check deleted while it is analysed stays deleted, with no file
left; every route that takes a kind serves only its own kinds; a full disk never makes a page that writes a 500."""

from __future__ import annotations

import errno
from http import HTTPStatus

import pytest
from django.core.files.storage import FileSystemStorage
from django.urls import reverse

from detector import tasks
from detector.models import Analysis, Detection
from detector.services import reports
from detector.services.detections import delete_detection
from tests.conftest import installed
from tests.web.conftest import portrait_file, stored_files, upload_file

pytestmark = pytest.mark.django_db
UPLOAD = reverse("detector:upload")


def delete_while_analysed():
    """What the owner (or the account deletion, retention, the admin) does while the analysis runs."""
    delete_detection(Detection.objects.get())


def assert_nothing_left(media_root):
    assert not Detection.objects.exists() and not Analysis.objects.exists()
    assert stored_files(media_root) == []


def test_an_image_deleted_while_analysed_in_the_request_stays_deleted(
    alice, stub_detector, media_root, django_capture_on_commit_callbacks
):
    stub_detector.during = delete_while_analysed
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(UPLOAD, {"image": upload_file()})
    assert response.status_code == HTTPStatus.FOUND and stub_detector.calls == 1
    assert_nothing_left(media_root)
    assert alice.get(response["Location"]).status_code == HTTPStatus.NOT_FOUND


def test_an_image_deleted_while_a_worker_analyses_it_stays_deleted(
    api, stub_detector, settings, monkeypatch, media_root, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.analyse_detection, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(reverse("api:detections"), {"image": upload_file()}).json()
    pk = created["results"][0]["detection"]["id"]

    def owner_deletes():
        with django_capture_on_commit_callbacks(execute=True):
            assert api.delete(reverse("api:detection", args=[pk])).status_code == HTTPStatus.NO_CONTENT

    stub_detector.during = owner_deletes
    assert tasks.analyse_detection.apply(args=sent).get() == "skipped"
    assert_nothing_left(media_root)
    assert api.get(reverse("api:detection", args=[pk])).status_code == HTTPStatus.NOT_FOUND


@pytest.fixture
def squares_deleting(settings, monkeypatch, django_capture_on_commit_callbacks):
    """The square detector, which deletes the video's check once it has scored its frames (before the stills)."""
    from tests.clips import SquareDetector

    settings.DETECTOR_VIDEO_WORKERS = 0
    detector = SquareDetector()
    draw = detector.heatmaps

    def heatmaps_then_deleted(prepared):
        maps = draw(prepared)
        if Detection.objects.exists():
            with django_capture_on_commit_callbacks(execute=True):
                delete_while_analysed()
        return maps

    monkeypatch.setattr(detector, "heatmaps", heatmaps_then_deleted)
    with installed(detector):
        yield detector


def test_a_video_deleted_while_analysed_in_process_leaves_no_row_and_no_still(
    alice, squares_deleting, media_root, django_capture_on_commit_callbacks
):
    from tests.web.test_video import clip_file

    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    assert squares_deleting.prepared > 0
    assert_nothing_left(media_root)


def test_a_video_deleted_while_a_worker_analyses_it_leaves_no_row_and_no_still(
    alice, squares_deleting, settings, monkeypatch, media_root, django_capture_on_commit_callbacks
):
    from tests.web.test_video import clip_file

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.analyse_video, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    assert len(sent) == 1
    assert tasks.analyse_video.apply(args=sent).get() == "skipped"
    assert_nothing_left(media_root)


def test_a_review_saved_during_an_analysis_keeps_the_analysis(reviewer, stub_detector, client):
    """The admin saves the review's columns only; the analysis its own: neither undoes the other."""
    client.post(UPLOAD, {"image": upload_file()})
    detection = Detection.objects.get()
    url = reverse("admin:detector_detection_change", args=[detection.pk])
    Detection.objects.filter(pk=detection.pk).update(label="Real")  # an analysis finished after the form loaded
    response = reviewer.post(url, {"review_verdict": "fake", "review_note": "seen before"})
    assert response.status_code == HTTPStatus.FOUND
    detection.refresh_from_db()
    assert (detection.label, detection.review_verdict) == ("Real", "fake")


def test_the_admin_deletes_the_files_with_the_row(
    reviewer, stub_detector, client, media_root, django_capture_on_commit_callbacks
):
    client.post(UPLOAD, {"image": upload_file()})
    detection = Detection.objects.get()
    url = reverse("admin:detector_detection_delete", args=[detection.pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert reviewer.post(url, {"post": "yes"}).status_code == HTTPStatus.FOUND
    assert_nothing_left(media_root)


# -- routes that take a kind ------------------------------------------------------------------------------------


@pytest.fixture
def judged(alice, tiny_detector):
    alice.post(UPLOAD, {"image": portrait_file()})
    detection = Detection.objects.get()
    assert detection.faces
    return detection


def shared_token(alice, detection):
    alice.post(reverse("detector:share", args=[detection.pk]))
    detection.refresh_from_db()
    return reports.share_token(detection)


@pytest.mark.parametrize("kind", ["heatmap", "image", "crop", "html", "PDF", "pdf.exe"])
def test_a_shared_report_serves_only_pdf_and_json(alice, judged, kind):
    token = shared_token(alice, judged)
    assert alice.get(f"/shared/{token}/report.{kind}").status_code == HTTPStatus.NOT_FOUND
    for good in ("pdf", "json"):
        assert alice.get(reverse("detector:shared_report", args=[token, good])).status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    "path",
    [
        "/detections/{pk}/report.heatmap",
        "/detections/{pk}/report.png",
        "/detections/{pk}/faces/1/secret.png",
        "/detections/{pk}/faces/1/image.png",
        "/detections/{pk}/tracks/1/stills/1/crop",
        "/overview/heatmap.svg",
        "/api/v1/detections/{pk}/report.heatmap",
        "/api/v1/detections/{pk}/faces/1/report.png",
        "/api/v1/detections/{pk}/tracks/1/stills/1/pdf",
    ],
)
def test_every_route_that_takes_a_kind_is_404_for_another(alice, judged, path):
    assert alice.get(path.format(pk=judged.pk)).status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(
    "path",
    [
        "/admin/detector/detection/{pk}/file/secret/",
        "/admin/detector/detection/{pk}/report.heatmap",
        "/admin/detector/detection/{pk}/faces/1/pdf.png",
    ],
)
def test_the_admin_routes_that_take_a_kind_lead_elsewhere_for_another(reviewer, judged, path):
    """The admin's own catch-all answers any other address under a detection with a redirect to one of its pages,
    never with a file."""
    response = reviewer.get(path.format(pk=judged.pk), follow=True)
    assert response.redirect_chain and response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/html")


# -- a full disk -----------------------------------------------------------------------------------------------


@pytest.fixture
def disk_full(monkeypatch):
    """Every write to the media folder fails as on a full disk, until ``room()`` is called."""
    original = FileSystemStorage._save

    def full(self, name, content):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", full)
    return lambda: monkeypatch.setattr(FileSystemStorage, "_save", original)


def test_a_heatmap_on_a_full_disk_is_served_unstored_and_kept_once_there_is_room(alice, judged, disk_full, media_root):
    url = reverse("detector:face_image", args=[judged.pk, 1, "heatmap"])
    response = alice.get(url)
    assert response.status_code == HTTPStatus.OK and response.content.startswith(b"\x89PNG")
    assert not (media_root / "faces").exists() or list((media_root / "faces").iterdir()) == []
    disk_full()  # room again
    assert alice.get(url).content == response.content
    assert sorted(p.name for p in (media_root / "faces").iterdir()) == [
        f"{judged.pk}-1-crop.png",
        f"{judged.pk}-1-heatmap.png",
    ]


def test_a_pdf_report_on_a_full_disk_is_made_all_the_same(alice, judged, disk_full):
    response = alice.get(reverse("detector:report", args=[judged.pk, "pdf"]))
    assert response.status_code == HTTPStatus.OK and response.content.startswith(b"%PDF")


def test_a_heatmap_whose_storage_cannot_be_read_is_503(alice, judged, monkeypatch):
    def unreadable(self, name, mode="rb"):
        raise OSError(errno.EIO, "Input/output error")

    alice.get(reverse("detector:face_image", args=[judged.pk, 1, "heatmap"]))  # drawn and kept
    monkeypatch.setattr(FileSystemStorage, "_open", unreadable)
    response = alice.get(reverse("detector:face_image", args=[judged.pk, 1, "heatmap"]))
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "file storage" in response.content.decode()
    api = alice.get(reverse("api:face_image", args=[judged.pk, 1, "heatmap"]), headers={"Accept": "image/png"})
    assert api.status_code == HTTPStatus.SERVICE_UNAVAILABLE and api.json()["error"]["code"] == "storage_unavailable"


def test_face_pictures_drawn_for_a_check_deleted_meanwhile_are_not_kept(alice, judged, media_root, monkeypatch):
    from detector.services import explanations

    draw = explanations._draw

    def drawn_then_deleted(detection):
        pictures = draw(detection)
        Detection.objects.filter(pk=detection.pk).delete()
        return pictures

    monkeypatch.setattr(explanations, "_draw", drawn_then_deleted)
    detection = Detection.objects.get()
    explanations.face_image(detection, 1, "heatmap")
    assert not (media_root / "faces").exists() or list((media_root / "faces").iterdir()) == []
