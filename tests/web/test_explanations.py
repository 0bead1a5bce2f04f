"""Per-face crops and heatmaps: made on first view, owner-only, deleted with the detection."""

import io
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from detector.models import Detection
from tests.web.conftest import portrait_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def detection(alice, tiny_detector):
    alice.post(reverse("detector:upload"), {"image": portrait_file()})
    return Detection.objects.get()


def face_url(detection, kind, number=1):
    return reverse("detector:face_image", args=[detection.pk, number, kind])


def test_pictures_are_not_made_while_the_user_waits_for_the_verdict(detection, media_root):
    assert detection.status == "done"
    assert not (media_root / "faces").exists()


@pytest.mark.parametrize("kind", ["crop", "heatmap"])
def test_the_owner_gets_each_faces_pictures(alice, detection, media_root, kind):
    response = alice.get(face_url(detection, kind))
    assert response.status_code == HTTPStatus.OK and response["Content-Type"] == "image/png"
    im = Image.open(io.BytesIO(response.content))
    assert im.size == (32, 32)
    assert sorted(p.name for p in (media_root / "faces").iterdir()) == [
        f"{detection.pk}-1-crop.png",
        f"{detection.pk}-1-heatmap.png",
    ]


def test_the_result_page_offers_the_heatmap(alice, detection):
    page = alice.get(detection.get_absolute_url()).content.decode()
    assert face_url(detection, "heatmap") in page and face_url(detection, "crop") in page
    assert "detector/faces.js" in page


@pytest.mark.parametrize("number, kind", [(2, "crop"), (1, "secret")])
def test_unknown_faces_and_kinds_are_404(alice, detection, number, kind):
    assert alice.get(f"/detections/{detection.pk}/faces/{number}/{kind}.png").status_code == HTTPStatus.NOT_FOUND


def test_a_picture_from_another_model_version_is_not_made(alice, detection):
    Detection.objects.filter(pk=detection.pk).update(model_version="older")
    assert alice.get(face_url(detection, "heatmap")).status_code == HTTPStatus.NOT_FOUND


def test_someone_else_gets_404(detection, other_user):
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(face_url(detection, "heatmap")).status_code == HTTPStatus.NOT_FOUND


def test_staff_see_the_pictures_in_the_admin(client, staff, detection):
    client.force_login(staff)
    page = client.get(reverse("admin:detector_detection_change", args=[detection.pk])).content.decode()
    url = reverse("admin:detector_detection_face", args=[detection.pk, 1, "heatmap"])
    assert url in page and "detector/faces.css" in page
    assert client.get(url).status_code == HTTPStatus.OK


def test_deleting_removes_the_face_pictures(alice, detection, media_root, django_capture_on_commit_callbacks):
    alice.get(face_url(detection, "heatmap"))
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("detector:delete", args=[detection.pk]))
    assert list((media_root / "faces").iterdir()) == []
