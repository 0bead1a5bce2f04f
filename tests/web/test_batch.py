"""Batches: many files at once, by the batch page and by the API; one bad file stops no other."""

import re
from http import HTTPStatus

import pytest
from django.urls import reverse

from detector.models import Detection
from tests.conftest import image_bytes
from tests.web.conftest import stored_files, upload_file

pytestmark = pytest.mark.django_db
BATCH = reverse("detector:batch")


def good_and_bad():
    return [
        upload_file("first.jpg"),
        upload_file("notes.jpg", b"not an image at all"),
        upload_file("third.png", image_bytes("PNG"), "image/png"),
    ]


def files_of(detection):
    return {f.name for f in (detection.image, detection.preview, detection.thumbnail)}


def assert_only_the_good_files_are_stored(media_root):
    rows = list(Detection.objects.order_by("original_name"))
    assert [d.original_name for d in rows] == ["first.jpg", "third.png"]
    assert all(d.status == "done" for d in rows)
    stored = {p.relative_to(media_root).as_posix() for p in stored_files(media_root)}
    assert stored == files_of(rows[0]) | files_of(rows[1])  # nothing left behind for the bad file


def test_the_batch_page_offers_a_multiple_file_input(client):
    page = client.get(BATCH).content.decode()
    assert 'name="images"' in page and " multiple" in page and '<label for="id_images">' in page
    assert "detector/batch.js" in page and "<script>" not in page
    assert f'data-upload-url="{reverse("detector:upload")}"' in page


def test_a_batch_with_one_bad_file_stores_the_good_ones_and_reports_the_bad_one(client, stub_detector, media_root):
    response = client.post(BATCH, {"images": good_and_bad()})
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "2 checked, 1 not accepted." in page
    assert "notes.jpg" in page
    assert "This is not a JPEG, PNG, WebP, HEIC or AVIF image, nor an MP4, MOV, WebM or MKV video." in page
    for detection in Detection.objects.all():
        assert detection.get_absolute_url() in page
    assert_only_the_good_files_are_stored(media_root)


def test_an_api_batch_with_one_bad_file_stores_the_good_ones_and_reports_the_bad_one(api, stub_detector, media_root):
    response = api.post(reverse("api:detections"), {"image": good_and_bad()})
    assert response.status_code == HTTPStatus.CREATED
    results = response.json()["results"]
    assert [r["file_name"] for r in results] == ["first.jpg", "notes.jpg", "third.png"]
    assert results[0]["detection"]["label"] == "Deepfake" and results[2]["detection"]["label"] == "Deepfake"
    assert results[1]["detection"] is None
    assert results[1]["error"] == {
        "code": "unsupported_media_type",
        "message": "This is not a JPEG, PNG, WebP, HEIC or AVIF image, nor an MP4, MOV, WebM or MKV video.",
        "field": "image",
    }
    assert_only_the_good_files_are_stored(media_root)


def test_a_batch_of_only_bad_files_is_400_and_stores_nothing(client, stub_detector, media_root):
    response = client.post(BATCH, {"images": [upload_file("a.jpg", b"x"), upload_file("b.jpg", b"")]})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "0 checked, 2 not accepted." in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_a_batch_without_files_is_400(client, stub_detector):
    response = client.post(BATCH, {})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Choose one or more images or videos." in response.content.decode()


def test_more_files_than_the_setting_are_refused_before_any_is_stored(client, stub_detector, settings, media_root):
    settings.DETECTOR_BATCH_MAX_FILES = 2
    response = client.post(BATCH, {"images": good_and_bad()})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Upload at most 2 files at a time." in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_a_batch_larger_than_what_is_left_sends_what_fits_and_says_when_the_rest_can_go(
    client, stub_detector, settings
):
    settings.DETECTOR_RATE_LIMIT = "2/h"
    response = client.post(BATCH, {"images": [upload_file("a.jpg"), upload_file("b.jpg"), upload_file("c.jpg")]})
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "2 checked, 0 not accepted, 1 not sent (over the limit)." in page
    assert re.search(r"Not sent: over your limit\. You can send it in \d+ minutes?\.", page)
    assert sorted(Detection.objects.values_list("original_name", flat=True)) == ["a.jpg", "b.jpg"]
    response = client.post(BATCH, {"images": [upload_file("c.jpg")]})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS and Detection.objects.count() == 2


def test_signed_in_users_get_a_higher_allowance_and_visitors_are_told(client, user, stub_detector, settings):
    settings.DETECTOR_RATE_LIMIT, settings.DETECTOR_RATE_LIMIT_SIGNED_IN = "2/h", "5/h"
    page = client.get(reverse("detector:upload")).content.decode()
    assert "You can check <span data-left-count>2</span> more files now, of 2 every hour." in page
    assert "A refused file counts too." in page and "for 5 every hour" in page
    client.force_login(user)
    page = client.get(BATCH).content.decode()
    assert "You can check <span data-left-count>5</span> more files now, of 5 every hour." in page
    assert 'data-refusals-count="false"' in page
    settings.DETECTOR_RATE_LIMIT = ""  # empty: no limit for anyone, signed in or not
    assert 'id="allowance"' not in client.get(BATCH).content.decode()


def test_the_batch_page_reports_an_unavailable_detector(client, media_root, monkeypatch):
    from detector.services import inference

    monkeypatch.setattr(inference, "_detector", None)
    monkeypatch.setattr(inference, "load_service", lambda warm_up=True, path=None: None)
    response = client.post(BATCH, {"images": [upload_file()]})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "not available" in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_anonymous_visitors_own_their_batch(client, stub_detector):
    client.post(BATCH, {"images": [upload_file("a.jpg"), upload_file("b.jpg")]})
    history = client.get(reverse("detector:history"))
    assert {d.original_name for d in history.context["detections"]} == {"a.jpg", "b.jpg"}


def test_the_upload_view_tells_the_batch_script_each_verdict(client, stub_detector):
    response = client.post(reverse("detector:upload"), {"image": upload_file()}, headers={"Accept": "application/json"})
    detection = Detection.objects.get()
    assert response.json() == {
        "id": str(detection.pk),
        "status": "done",
        "status_display": "Done",
        "url": detection.get_absolute_url(),
        "status_url": reverse("detector:status", args=[detection.pk]),
        "label": "Deepfake",
        "style": "deepfake",
        "fake_percent": 90,
        "fake_text": "90 %",
        "thumbnail": reverse("detector:thumbnail", args=[detection.pk]),
        "kind": "image",
        "frames_sampled": None,
        "frames_planned": None,
        "model_version": "stub-1",  # the version that judged
    }


def test_a_batch_that_storage_cannot_take_is_a_503(client, stub_detector, media_root, monkeypatch):
    from detector.storage import MediaStorage

    def read_only(self, name, content):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(MediaStorage, "_save", read_only)
    response = client.post(BATCH, {"images": [upload_file("a.jpg"), upload_file("b.jpg")]})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "could not be stored" in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []
