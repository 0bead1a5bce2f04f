"""Reports people can file: a JSON document and a PDF of a detection, and a signed read-only link that expires
and can be revoked."""

import io
import json
import re
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from detector.models import Detection
from tests.web.conftest import portrait_file, upload_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def detection(alice, tiny_detector):
    alice.post(reverse("detector:upload"), {"image": portrait_file("Портрет-東京.jpg")})
    d = Detection.objects.get()
    Detection.objects.filter(pk=d.pk).update(review_verdict="real", review_note="Agency original found.")
    d.refresh_from_db()
    return d


def test_the_json_report_names_the_analysis_and_holds_every_fact(alice, detection):
    response = alice.get(reverse("detector:report", args=[detection.pk, "json"]))
    assert response.status_code == HTTPStatus.OK and "attachment" in response["Content-Disposition"]
    report = json.loads(b"".join(response.streaming_content) if response.streaming else response.content)
    assert report["file"]["sha256"] == detection.sha256 and report["file"]["name"] == "Портрет-東京.jpg"
    assert report["analysis"]["model_version"] == "tiny-1" and report["analysis"]["analysed_at"]
    assert report["verdict"]["label"] == detection.label and report["verdict"]["fake_probability"] is not None
    [face] = report["faces"]
    assert face["number"] == 1 and face["decided"] and set(face["box"]) == {"x", "y", "width", "height"}
    assert report["provenance"][0]["strength"] == "none"
    assert report["review"]["verdict"] == "real" and report["review"]["note"] == "Agency original found."
    assert report["earlier_sightings"]["count"] == 0 and "not as proof" in report["limits"]


def test_the_pdf_opens_and_holds_the_expected_text(alice, detection):
    from pypdf import PdfReader

    response = alice.get(reverse("detector:report", args=[detection.pk, "pdf"]))
    assert response.status_code == HTTPStatus.OK and response["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Портрет-東京.jpg" in text or "Портрет" in text  # names in any script print (DejaVu Sans embedded)
    assert detection.sha256 in text.replace("\n", "") and "tiny-1" in text and "Reviewed: real" in text
    assert "Face 1:" in text and "Limits" in text
    images = sum(len(page.images) for page in reader.pages)
    assert images >= 2  # the boxed image and the face's heatmap


def test_someone_else_cannot_get_the_report(detection, other_user):
    bob = Client()
    bob.force_login(other_user)
    assert bob.get(reverse("detector:report", args=[detection.pk, "pdf"])).status_code == HTTPStatus.NOT_FOUND


def test_a_share_link_opens_a_read_only_report_until_revoked(alice, detection):
    alice.post(reverse("detector:share", args=[detection.pk]))
    detection.refresh_from_db()
    page = alice.get(detection.get_absolute_url()).content.decode()
    url = re.search(r'<input class="share-link"[^>]* value="([^"]+)"', page).group(1)
    path = url.split("testserver", 1)[1]
    stranger = Client()
    shared = stranger.get(path)
    assert shared.status_code == HTTPStatus.OK
    text = shared.content.decode()
    assert detection.sha256 in text and "Agency original found." in text
    assert reverse("detector:delete", args=[detection.pk]) not in text  # nothing of the owner's beyond the report
    image = stranger.get(path + "image.jpg")
    assert image.status_code == HTTPStatus.OK and image["Content-Type"] == "image/jpeg"
    assert stranger.get(path + "report.pdf").status_code == HTTPStatus.OK
    assert (
        stranger.get(detection.get_absolute_url()).status_code == HTTPStatus.NOT_FOUND
    )  # the owner's page stays theirs
    alice.post(reverse("detector:share_revoke", args=[detection.pk]))
    assert stranger.get(path).status_code == HTTPStatus.NOT_FOUND
    assert stranger.get(path + "image.jpg").status_code == HTTPStatus.NOT_FOUND


def test_a_share_link_expires_and_a_forged_one_opens_nothing(alice, detection, settings):
    from django.core import signing

    from detector.services import reports

    alice.post(reverse("detector:share", args=[detection.pk]))
    detection.refresh_from_db()
    token = reports.share_token(detection)
    assert reports.shared_detection(token) == detection
    settings.DETECTOR_SHARE_DAYS = 0
    assert reports.shared_detection(token) is None  # expired
    settings.DETECTOR_SHARE_DAYS = 7
    forged = signing.dumps({"id": str(detection.pk), "key": "guess"}, salt="another salt")
    assert Client().get(reverse("detector:shared", args=[forged])).status_code == HTTPStatus.NOT_FOUND
    other = Detection.objects.exclude(pk=detection.pk)
    assert not other.exists()


def test_a_report_of_a_detection_without_a_face(alice, stub_detector):
    stub_detector.face_found = False
    alice.post(reverse("detector:upload"), {"image": upload_file()})
    d = Detection.objects.get()
    report = json.loads(alice.get(reverse("detector:report", args=[d.pk, "json"])).content)
    assert report["verdict"]["label"] == "No face" and report["faces"] == []
    assert alice.get(reverse("detector:report", args=[d.pk, "pdf"])).status_code == HTTPStatus.OK


def test_the_api_and_the_admin_give_the_report_too(api, tiny_detector, staff):
    from pypdf import PdfReader

    response = api.post(reverse("api:detections"), {"image": portrait_file()})
    pk = response.json()["results"][0]["detection"]["id"]
    report = api.get(reverse("api:report", args=[pk, "json"])).json()
    assert report["analysis"]["model_version"] == "tiny-1" and len(report["faces"]) == 1
    pdf = api.get(reverse("api:report", args=[pk, "pdf"]))
    assert pdf["Content-Type"] == "application/pdf" and PdfReader(io.BytesIO(pdf.content)).pages
    assert api.get(f"/api/v1/detections/{pk}/report.docx").json()["error"]["code"] == "not_found"
    reviewer = Client()
    reviewer.force_login(staff)
    change = reviewer.get(reverse("admin:detector_detection_change", args=[pk])).content.decode()
    assert reverse("admin:detector_detection_report", args=[pk, "pdf"]) in change
    assert reviewer.get(reverse("admin:detector_detection_report", args=[pk, "pdf"])).status_code == HTTPStatus.OK
