"""The upload limits (services/limits.py): refused before the body is read, and only accepted uploads count."""

from http import HTTPStatus

import pytest
from django.core.files.uploadhandler import FileUploadHandler
from django.urls import reverse

from detector.ml.inference import preprocessing
from detector.models import Detection
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
UPLOAD, BATCH, API = reverse("detector:upload"), reverse("detector:batch"), reverse("api:detections")
PARSED = []


class RecordingUploadHandler(FileUploadHandler):
    """First of the upload handlers: records that a multipart body began to be parsed, then lets the others work."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        PARSED.append(content_length)

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None


@pytest.fixture
def watched(settings, monkeypatch):
    """Which request bodies were parsed, and how many images were decoded."""
    PARSED.clear()
    settings.FILE_UPLOAD_HANDLERS = [f"{__name__}.RecordingUploadHandler", *settings.FILE_UPLOAD_HANDLERS]
    decoded, real = [], preprocessing._decode
    monkeypatch.setattr(preprocessing, "_decode", lambda *a, **k: decoded.append(1) or real(*a, **k))
    return {"parsed": PARSED, "decoded": decoded}


def test_a_throttled_upload_is_refused_before_its_body_is_parsed_or_decoded(client, stub_detector, settings, watched):
    settings.DETECTOR_RATE_LIMIT = "1/h"
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND
    assert len(watched["parsed"]) == 1 and len(watched["decoded"]) == 1
    for _ in range(2):
        response = client.post(UPLOAD, {"image": upload_file()})
        assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS and response["Retry-After"]
        assert "Too many uploads" in response.content.decode()
    assert len(watched["parsed"]) == 1 and len(watched["decoded"]) == 1
    assert Detection.objects.count() == 1


def test_a_throttled_batch_and_api_upload_are_refused_unread_too(api, user, stub_detector, settings, watched, client):
    settings.DETECTOR_RATE_LIMIT = "1/h"
    client.force_login(user)
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND
    watched["parsed"].clear()
    watched["decoded"].clear()
    assert client.post(BATCH, {"images": [upload_file()]}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    over = api.post(API, {"image": upload_file()})
    assert over.status_code == HTTPStatus.TOO_MANY_REQUESTS and over.json()["error"]["code"] == "rate_limited"
    assert watched["parsed"] == [] and watched["decoded"] == []


def test_a_request_larger_than_its_files_may_be_is_refused_unread(client, stub_detector, settings, watched):
    settings.DETECTOR_MAX_UPLOAD_MB = settings.DETECTOR_MAX_VIDEO_MB = 0.01  # a file: 10 KB, plus 1 MB of framing
    big = upload_file(data=b"\xff\xd8" + b"x" * 1_200_000)
    response = client.post(UPLOAD, {"image": big}, headers={"Accept": "application/json"})
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["error"]["code"] == "request_too_large"
    page = client.post(UPLOAD, {"image": upload_file(data=b"\xff\xd8" + b"x" * 1_200_000)})
    assert page.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE and "larger than" in page.content.decode()
    assert watched["parsed"] == [] and not Detection.objects.exists()


def test_a_refused_forged_post_spends_nobodys_allowance(stub_detector, settings, user):
    from django.test import Client

    settings.DETECTOR_RATE_LIMIT = "1/h"
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(user)
    assert forged.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FORBIDDEN
    owner = Client()
    owner.force_login(user)
    assert owner.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND


def test_a_signed_in_users_file_refused_for_its_own_fault_uses_up_nothing(client, user, stub_detector, settings):
    settings.DETECTOR_RATE_LIMIT = "2/h"
    client.force_login(user)
    assert client.post(UPLOAD, {"image": upload_file(data=b"not an image")}).status_code == HTTPStatus.BAD_REQUEST
    response = client.post(BATCH, {"images": [upload_file("bad.jpg", b"nope"), upload_file("good.jpg")]})
    assert "1 checked, 1 not accepted." in response.content.decode()
    assert "You can check <span data-left-count>1</span> more file now" in client.get(UPLOAD).content.decode()
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "You have used all 2 checks for now" in client.get(UPLOAD).content.decode()
    assert Detection.objects.count() == 2


def test_an_anonymous_clients_refused_files_count_against_its_allowance(client, stub_detector, settings):
    settings.DETECTOR_RATE_LIMIT = "3/h"
    assert client.post(UPLOAD, {"image": upload_file(data=b"not an image")}).status_code == HTTPStatus.BAD_REQUEST
    response = client.post(BATCH, {"images": [upload_file("bad.jpg", b"nope"), upload_file("good.jpg")]})
    assert "1 checked, 1 not accepted." in response.content.decode()
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert Detection.objects.count() == 1


def test_a_body_larger_than_the_allowance_left_could_make_is_refused_unread(client, stub_detector, settings, watched):
    """20 files of 10 MB might come in one batch, but not from a client with 2 uploads left: 2 x 10 MB + framing."""
    settings.DETECTOR_RATE_LIMIT = "3/h"
    settings.DETECTOR_MAX_UPLOAD_MB = settings.DETECTOR_MAX_VIDEO_MB = 0.5
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND
    watched["parsed"].clear()
    files = [upload_file(f"{n}.jpg", b"\xff\xd8" + b"x" * 400_000) for n in range(6)]  # 2.4 MB: over 2 x 0.5 + 1
    response = client.post(BATCH, {"images": files}, headers={"Accept": "application/json"})
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert "send at most 2 files now" in response.json()["error"]["message"]
    assert watched["parsed"] == [] and Detection.objects.count() == 1
    assert "You can check <span data-left-count>1</span> more file now" in client.get(UPLOAD).content.decode()


def test_the_ceiling_refuses_any_larger_body_unread_with_or_without_a_token(api, stub_detector, settings, watched):
    settings.DETECTOR_MAX_REQUEST_MB = 1
    body = {"image": upload_file(data=b"\xff\xd8" + b"x" * 1_100_000)}
    response = api.post(API, body)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["error"]["code"] == "request_too_large"
    assert watched["parsed"] == [] and not Detection.objects.exists()


def test_a_form_that_takes_no_file_refuses_a_large_body_unread(client, watched):
    files = {"username": "alice", "password": "x", "junk": upload_file(data=b"x" * 4_000_000)}
    response = client.post(reverse("login"), files)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE and watched["parsed"] == []


def test_a_batch_of_far_too_many_files_gets_the_json_error_it_asked_for(alice, stub_detector, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 30
    files = [upload_file(f"{n}.jpg", b"x") for n in range(31)]
    response = alice.post(BATCH, {"images": files}, headers={"Accept": "application/json", "X-CSRFToken": "x"})
    assert response.status_code == HTTPStatus.BAD_REQUEST and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "too_many_files"
    assert not Detection.objects.exists()


def test_an_upload_is_decoded_once_in_the_request(client, stub_detector, watched):
    client.post(UPLOAD, {"image": upload_file()})
    assert Detection.objects.get().status == "done" and len(watched["decoded"]) == 1


def test_a_queued_upload_is_decoded_once_by_the_checks_and_once_by_the_worker(
    client, stub_detector, settings, monkeypatch, watched, django_capture_on_commit_callbacks
):
    from detector import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.analyse_detection, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(UPLOAD, {"image": upload_file()})
    assert len(watched["decoded"]) == 1 and stub_detector.calls == 0
    tasks.analyse_detection.apply(args=sent)
    detection = Detection.objects.get()
    assert detection.status == "done" and detection.attempts == 1 and len(watched["decoded"]) == 2


@pytest.mark.parametrize("wait, words", [(1, "1 minute "), (59, "1 minute "), (60, "1 minute "), (1232, "21 minutes")])
def test_the_wait_is_said_in_whole_minutes(wait, words):
    from detector.services.limits import too_many_uploads

    assert f"wait {words}" in too_many_uploads(wait)
