"""Reviewers audit detections in the admin; nobody else gets in."""

import csv
import io
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from detector.models import Detection
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:detector_detection_changelist")


@pytest.fixture
def detection(user, stub_detector):
    owner = Client()
    owner.force_login(user)
    owner.post(reverse("detector:upload"), {"image": upload_file("=cmd|calc.jpg")})
    return Detection.objects.get()


@pytest.fixture
def reviewer(client, staff):
    client.force_login(staff)
    return client


def test_the_changelist_shows_thumbnails_and_verdicts(reviewer, detection):
    page = reviewer.get(CHANGELIST).content.decode()
    assert reverse("admin:detector_detection_file", args=[detection.pk, "thumbnail"]) in page
    assert "Deepfake" in page and "90 %" in page


@pytest.mark.parametrize(
    "query, found",
    [
        ("q=calc", True),
        ("q=nothing-like-it", False),
        ("label__exact=Deepfake", True),
        ("label__exact=Real", False),
        ("status__exact=done", True),
        ("model_version=stub-1", True),
        ("review_verdict__exact=real", False),
    ],
)
def test_search_and_filters(reviewer, detection, query, found):
    result = reviewer.get(f"{CHANGELIST}?{query}")
    assert result.status_code == HTTPStatus.OK
    assert (detection in result.context["cl"].result_list) is found


def test_search_by_sha256_and_id(reviewer, detection):
    for term in (detection.sha256, str(detection.pk)):
        assert list(reviewer.get(CHANGELIST, {"q": term}).context["cl"].result_list) == [detection]


def test_the_detail_page_shows_the_image_with_face_boxes(reviewer, detection):
    page = reviewer.get(reverse("admin:detector_detection_change", args=[detection.pk])).content.decode()
    assert reverse("admin:detector_detection_file", args=[detection.pk, "preview"]) in page
    assert 'class="facebox face-deepfake"' in page and "Face 1 · <strong>90 % fake</strong>" in page
    image = reviewer.get(reverse("admin:detector_detection_file", args=[detection.pk, "image"]))
    assert image.status_code == HTTPStatus.OK and image["X-Content-Type-Options"] == "nosniff"


def test_inference_fields_are_read_only(reviewer, detection, staff):
    url = reverse("admin:detector_detection_change", args=[detection.pk])
    reviewer.post(
        url, {"label": "Real", "fake_probability": "0.01", "review_verdict": "real", "review_note": "checked"}
    )
    detection.refresh_from_db()
    assert detection.label == "Deepfake" and detection.fake_probability == 0.9
    assert detection.review_verdict == "real" and detection.review_note == "checked"
    assert detection.reviewed_by == staff and detection.reviewed_at


@pytest.mark.parametrize("action, verdict", [("mark_reviewed_real", "real"), ("mark_reviewed_fake", "fake")])
def test_review_actions(reviewer, detection, staff, action, verdict):
    reviewer.post(CHANGELIST, {"action": action, "_selected_action": [detection.pk]})
    detection.refresh_from_db()
    assert detection.review_verdict == verdict and detection.reviewed_by == staff


def test_csv_export_neutralises_formulas(reviewer, detection):
    response = reviewer.post(CHANGELIST, {"action": "export_csv", "_selected_action": [detection.pk]})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert response["Content-Type"] == "text/csv"
    assert rows[0]["id"] == str(detection.pk) and rows[0]["label"] == "Deepfake"
    assert rows[0]["original_name"] == "'=cmd|calc.jpg"


def test_the_admin_is_closed_to_non_staff(client, user, detection):
    client.force_login(user)
    for url in (CHANGELIST, reverse("admin:detector_detection_file", args=[detection.pk, "image"])):
        response = client.get(url)
        assert response.status_code == HTTPStatus.FOUND and "/admin/login/" in response.url


def test_the_admin_is_closed_to_anonymous_visitors(client, detection):
    assert client.get(CHANGELIST).status_code == HTTPStatus.FOUND


def test_the_list_shows_each_verdict_as_its_badge_with_percentages_and_filters_no_face(reviewer, detection):
    page = reviewer.get(CHANGELIST).content.decode()
    assert (
        '<span class="badge badge-deepfake">Deepfake</span>' in page
        and '<td class="field-fake_percent_display">90 %' in page
    )
    Detection.objects.filter(pk=detection.pk).update(label="No face", fake_probability=None)
    assert reviewer.get(CHANGELIST, {"label__exact": "No face"}).context["cl"].result_count == 1
    detail = reviewer.get(reverse("admin:detector_detection_change", args=[detection.pk])).content.decode()
    assert "0.9" not in detail.split("Verdict", 1)[1].split("Review", 1)[0].replace("90 %", "")
