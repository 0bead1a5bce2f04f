"""What people can do with their own data (services/privacy.py): take it with them, delete it, have it expire."""

import io
import json
import zipfile
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from detector.models import Detection
from tests.conftest import image_bytes
from tests.web.conftest import stored_files, upload_file

pytestmark = pytest.mark.django_db
UPLOAD = reverse("detector:upload")


def test_deleting_the_account_deletes_every_check_and_file_of_it_and_nothing_else(
    alice, user, other_user, stub_detector, media_root, django_capture_on_commit_callbacks
):
    for name in ("a.jpg", "b.png"):
        alice.post(UPLOAD, {"image": upload_file(name)})
    bob = Client()
    bob.force_login(other_user)
    bob.post(UPLOAD, {"image": upload_file("bobs.jpg")})
    bobs_files = {f.name for f in (Detection.objects.get(owner=other_user).image,)}

    wrong = alice.post(reverse("account_delete"), {"password": "not-it"})
    assert wrong.status_code == HTTPStatus.OK and "nothing was deleted" in wrong.content.decode()
    assert Detection.objects.filter(owner=user).count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(reverse("account_delete"), {"password": "pw-alice-123"}, follow=True)
    assert "were deleted" in response.content.decode()
    assert not type(user).objects.filter(pk=user.pk).exists()
    assert list(Detection.objects.values_list("original_name", flat=True)) == ["bobs.jpg"]
    left = {p.relative_to(media_root).as_posix() for p in stored_files(media_root)}
    assert bobs_files <= left and len(left) == 3  # bob's upload, preview and thumbnail
    assert alice.get(reverse("detector:history")).context["user"].is_anonymous


def test_the_account_page_needs_a_login(client):
    response = client.get(reverse("account_delete"))
    assert response.status_code == HTTPStatus.FOUND and reverse("login") in response["Location"]


def test_the_export_holds_every_check_of_the_requester_and_its_original(alice, stub_detector, media_root):
    png = image_bytes("PNG")
    alice.post(UPLOAD, {"image": upload_file("a.png", png, "image/png")})
    alice.post(UPLOAD, {"image": upload_file("b.jpg")})
    Client().post(UPLOAD, {"image": upload_file("someone-elses.jpg")})
    response = alice.get(reverse("detector:export"))
    assert response.status_code == HTTPStatus.OK and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="deepfake-checks-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    records = json.loads(archive.read("checks.json"))
    assert sorted(r["original_name"] for r in records) == ["a.png", "b.jpg"]
    first = next(r for r in records if r["original_name"] == "a.png")
    assert archive.read(first["original"]) == png
    assert first["label"] == "Deepfake" and first["faces"] and first["sha256"]


def test_an_anonymous_visitor_exports_their_sessions_checks(client, stub_detector):
    client.post(UPLOAD, {"image": upload_file("mine.jpg")})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get(reverse("detector:export")).streaming_content)))
    assert [r["original_name"] for r in json.loads(archive.read("checks.json"))] == ["mine.jpg"]
    stranger = zipfile.ZipFile(io.BytesIO(b"".join(Client().get(reverse("detector:export")).streaming_content)))
    assert json.loads(stranger.read("checks.json")) == []


def test_checks_past_the_retention_period_are_deleted_with_their_files(
    client, stub_detector, media_root, settings, capsys, django_capture_on_commit_callbacks
):
    client.post(UPLOAD, {"image": upload_file("old.jpg")})
    client.post(UPLOAD, {"image": upload_file("new.jpg")})
    Detection.objects.filter(original_name="old.jpg").update(created_at=timezone.now() - timedelta(days=31))
    call_command("cleanup_detections")
    assert Detection.objects.count() == 2  # off by default
    settings.DETECTOR_RETENTION_DAYS = 30
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cleanup_detections")
    assert "delete 1 detection(s) past the retention period" in capsys.readouterr().out
    assert list(Detection.objects.values_list("original_name", flat=True)) == ["new.jpg"]
    assert len(stored_files(media_root)) == 3


def test_the_sign_up_page_says_what_is_kept_and_for_how_long(client, settings):
    page = client.get(reverse("signup")).content.decode()
    assert "What is kept" in page and "kept until you delete them" in page and "the place it was taken" in page
    settings.DETECTOR_RETENTION_DAYS = 90
    assert "deleted 90 days after they were" in client.get(reverse("signup")).content.decode()


def test_signing_up_says_the_account_is_ready(client):
    response = client.post(
        reverse("signup"),
        {"username": "dora", "password1": "a-Strong-pass-123", "password2": "a-Strong-pass-123"},
        follow=True,
    )
    assert "your account is ready" in response.content.decode()
