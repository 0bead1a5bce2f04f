"""The REST API: each endpoint, each way to authenticate, each error code, and owner-only access."""

import datetime
import io
import os
from http import HTTPStatus

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from rest_framework.authtoken.models import Token

from detector.models import ApiToken, Detection
from tests.conftest import image_bytes
from tests.web.conftest import portrait_file, stored_files, upload_file
from tests.web.test_views import make_detections

pytestmark = pytest.mark.django_db
DETECTIONS = reverse("api:detections")
MODEL = reverse("api:model")


def detail(pk):
    return reverse("api:detection", args=[pk])


def post_images(client, *files, **kwargs):
    return client.post(DETECTIONS, {"image": list(files) or [upload_file()]}, **kwargs)


def error_of(response):
    body = response.json()
    assert set(body["error"]) == {"code", "message", "field"}
    return body["error"]


def noise_png(side=100):
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG")
    return buf.getvalue()


# Authentication


ENDPOINTS = [
    ("get", DETECTIONS),
    ("post", DETECTIONS),
    ("get", detail("3f6c2a9e-8d1b-4c57-a0e2-5b7d9c1e4f80")),
    ("delete", detail("3f6c2a9e-8d1b-4c57-a0e2-5b7d9c1e4f80")),
    ("get", MODEL),
]


@pytest.mark.parametrize("method, url", ENDPOINTS)
def test_anonymous_requests_get_401_naming_the_token_scheme(client, stub_detector, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"] == "Token"
    assert error_of(response)["code"] == "not_authenticated"


def test_an_unknown_token_is_401(stub_detector):
    response = Client(headers={"Authorization": "Token not-a-real-token"}).get(DETECTIONS)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_of(response)["code"] == "authentication_failed"


def test_a_token_stops_working_when_its_user_is_deactivated(api, user):
    user.is_active = False
    user.save()
    assert api.get(DETECTIONS).status_code == HTTPStatus.UNAUTHORIZED


def test_a_token_authenticates_its_user(api, user, stub_detector):
    response = post_images(api)
    assert response.status_code == HTTPStatus.CREATED
    assert Detection.objects.get().owner == user


def test_a_logged_in_browser_session_authenticates(alice, stub_detector):
    post_images(alice)
    assert alice.get(DETECTIONS).json()["count"] == 1


def test_a_session_post_without_a_csrf_token_is_403(user, stub_detector):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    response = post_images(browser)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert error_of(response)["code"] == "permission_denied" and "CSRF" in error_of(response)["message"]
    assert not Detection.objects.exists()


def test_a_session_post_with_its_csrf_token_is_accepted(user, stub_detector):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get(reverse("detector:upload"))  # sets the CSRF cookie, as any page does
    response = post_images(browser, headers={"X-CSRFToken": browser.cookies["csrftoken"].value})
    assert response.status_code == HTTPStatus.CREATED


def test_token_requests_need_no_csrf_token(token, stub_detector):
    script = Client(enforce_csrf_checks=True, headers={"Authorization": f"Token {token}"})
    assert post_images(script).status_code == HTTPStatus.CREATED


def test_anonymous_use_can_be_switched_on_and_owns_by_session(client, stub_detector, settings):
    settings.DETECTOR_API_ANONYMOUS = True
    response = post_images(client)
    assert response.status_code == HTTPStatus.CREATED
    pk = response.json()["results"][0]["detection"]["id"]
    assert client.get(detail(pk)).status_code == HTTPStatus.OK
    assert Client().get(detail(pk)).status_code == HTTPStatus.NOT_FOUND


# Uploads


def test_uploading_an_image_answers_its_detection(api, stub_detector, media_root):
    response = post_images(api, upload_file("holiday.png", image_bytes("PNG"), "image/png"))
    assert response.status_code == HTTPStatus.CREATED
    [result] = response.json()["results"]
    detection = Detection.objects.get()
    assert result["index"] == 0 and result["file_name"] == "holiday.png" and result["error"] is None
    body = result["detection"]
    assert body["id"] == str(detection.pk) and body["status"] == "done" and body["label"] == "Deepfake"
    assert body["url"] == "http://testserver" + detail(detection.pk)
    assert body["image"]["format"] == "PNG" and body["image"]["width"] == 320
    assert len(stored_files(media_root)) == 3


def test_uploading_many_images_makes_one_detection_each(api, stub_detector):
    response = post_images(api, upload_file("a.jpg"), upload_file("b.jpg"), upload_file("c.jpg"))
    assert response.status_code == HTTPStatus.CREATED
    assert [r["file_name"] for r in response.json()["results"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert Detection.objects.count() == 3 and stub_detector.calls == 3


def test_with_analysis_workers_each_file_is_queued_and_answers_pending(
    api, stub_detector, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from detector import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.analyse_detection, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_images(api, upload_file("a.jpg"), upload_file("b.jpg"))
    assert response.status_code == HTTPStatus.CREATED
    detections = [r["detection"] for r in response.json()["results"]]
    assert [(d["status"], d["label"]) for d in detections] == [("pending", None), ("pending", None)]
    assert sorted(sent) == sorted(d["id"] for d in detections)
    assert stub_detector.calls == 0


def test_no_file_is_400(api, stub_detector):
    response = api.post(DETECTIONS, {"note": "no image here"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_of(response) == {
        "code": "required",
        "message": "Choose one or more images or videos.",
        "field": "image",
    }


def test_more_files_than_the_setting_is_400_and_stores_nothing(api, stub_detector, settings, media_root):
    settings.DETECTOR_BATCH_MAX_FILES = 2
    response = post_images(api, upload_file(), upload_file(), upload_file())
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_of(response)["code"] == "too_many_files"
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_a_file_over_the_size_limit_is_413(api, stub_detector, settings, media_root):
    settings.DETECTOR_MAX_UPLOAD_MB = 0.01
    response = post_images(api, upload_file("big.png", noise_png(), "image/png"))
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error_of(response) == {
        "code": "file_too_large",
        "message": "The file is larger than 0.01 MB.",
        "field": "image",
    }
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_a_body_larger_than_a_full_batch_is_413_before_it_is_read(api, stub_detector, settings):
    settings.DETECTOR_MAX_UPLOAD_MB = settings.DETECTOR_MAX_VIDEO_MB = 0.01
    settings.DETECTOR_BATCH_MAX_FILES = 1
    response = post_images(api, upload_file("huge.png", noise_png(700), "image/png"))  # ~1.5 MB
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error_of(response)["code"] == "request_too_large"


def test_too_many_form_fields_is_a_400_not_a_500(api, stub_detector, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    response = api.post(DETECTIONS, {f"f{i}": "x" for i in range(10)})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_of(response)["code"] == "bad_request"


def test_form_fields_over_the_memory_limit_are_413(api, stub_detector, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post(DETECTIONS, {"note": "x" * 5000, "image": upload_file()})
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error_of(response)["code"] == "request_too_large"


@pytest.mark.parametrize(
    "name, data",
    [("notes.jpg", b"just some text"), ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>')],
)
def test_a_file_that_is_not_an_allowed_image_is_415(api, stub_detector, media_root, name, data):
    response = post_images(api, upload_file(name, data))
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert error_of(response)["code"] == "unsupported_media_type"
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_a_json_body_is_415(api, stub_detector):
    response = api.post(DETECTIONS, {"image": "aGVsbG8="}, content_type="application/json")
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "data, code",
    [
        (image_bytes("JPEG", size=(640, 480))[:2000], "damaged"),
        (image_bytes("PNG") + b"<html></html>", "trailing_data"),
        (b"", "empty"),
    ],
)
def test_other_bad_images_are_400_with_their_code(api, stub_detector, data, code):
    response = post_images(api, upload_file("x.png", data, "image/png"))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_of(response)["code"] == code
    assert response.json()["results"][0]["error"]["code"] == code


def test_each_image_counts_against_the_rate_limit(api, stub_detector, settings):
    settings.DETECTOR_RATE_LIMIT = "2/h"
    response = post_images(api, upload_file("a.jpg"), upload_file("b.jpg"), upload_file("c.jpg"))
    assert response.status_code == HTTPStatus.CREATED
    assert [r["error"] and r["error"]["code"] for r in response.json()["results"]] == [None, None, "rate_limited"]
    assert 0 < int(response["Retry-After"]) <= 3600
    over = post_images(api)
    assert over.status_code == HTTPStatus.TOO_MANY_REQUESTS and 0 < int(over["Retry-After"]) <= 3600
    assert error_of(over)["code"] == "rate_limited"
    assert Detection.objects.count() == 2


def test_the_api_and_the_form_share_one_rate_limit(api, user, stub_detector, settings):
    settings.DETECTOR_RATE_LIMIT = "1/h"
    browser = Client()
    browser.force_login(user)
    assert browser.post(reverse("detector:upload"), {"image": upload_file()}).status_code == HTTPStatus.FOUND
    assert post_images(api).status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_an_unavailable_detector_is_503_and_stores_nothing(api, media_root, monkeypatch):
    from detector.services import inference

    monkeypatch.setattr(inference, "_detector", None)
    monkeypatch.setattr(inference, "load_service", lambda warm_up=True, path=None: None)
    response = post_images(api)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE and response["Retry-After"]
    assert error_of(response)["code"] == "detector_unavailable"
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_unwritable_media_is_503_and_leaves_nothing(api, stub_detector, media_root, monkeypatch):
    from django.core.files.storage import FileSystemStorage

    def disk_full(self, name, content, max_length=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", disk_full)
    response = post_images(api)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert error_of(response)["code"] == "storage_unavailable"
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_a_database_that_is_down_is_a_json_503_and_leaves_no_file(api, stub_detector, media_root, monkeypatch):
    def locked(self, *args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(Detection, "save", locked)
    response = post_images(api)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE and response["Retry-After"]
    assert error_of(response)["code"] == "database_unavailable"
    assert stored_files(media_root) == []


# Listing


def test_the_list_holds_only_ones_own_detections(api, user, other_user):
    make_detections(other_user, 2, label="Real")
    mine = make_detections(user, 1, label="Real")[0]
    body = api.get(DETECTIONS).json()
    assert body["count"] == 1 and [d["id"] for d in body["results"]] == [str(mine.pk)]


def test_the_list_pages_by_20_and_takes_a_page_size(api, user):
    make_detections(user, 25, label="Real")
    first = api.get(DETECTIONS).json()
    assert first["count"] == 25 and len(first["results"]) == 20 and first["next"].endswith("?page=2")
    assert len(api.get(DETECTIONS, {"page": 2}).json()["results"]) == 5
    assert len(api.get(DETECTIONS, {"page_size": 5}).json()["results"]) == 5


def test_a_page_past_the_end_is_404(api, user):
    make_detections(user, 1, label="Real")
    response = api.get(DETECTIONS, {"page": 3})
    assert response.status_code == HTTPStatus.NOT_FOUND and error_of(response)["code"] == "not_found"


def test_the_list_filters_by_label_status_date_and_name(api, user):
    make_detections(user, 2, label="Real")
    fake = make_detections(user, 1, label="Deepfake")[0]
    Detection.objects.filter(pk=fake.pk).update(original_name="suspicious-portrait.png")
    failed = make_detections(user, 1, label="No verdict")[0]
    Detection.objects.filter(pk=failed.pk).update(status="failed")
    old = make_detections(user, 1, label="Real")[0]
    Detection.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=30))

    def ids(**params):
        return [d["id"] for d in api.get(DETECTIONS, params).json()["results"]]

    assert ids(label="Deepfake") == [str(fake.pk)]
    assert ids(status="failed") == [str(failed.pk)]
    assert ids(q="portrait") == [str(fake.pk)]
    since = (timezone.now() - datetime.timedelta(days=1)).date().isoformat()
    assert len(ids(created_from=since)) == 4
    until = (timezone.now() - datetime.timedelta(days=10)).date().isoformat()
    assert ids(created_to=until) == [str(old.pk)]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"label": "Fake"}, "label"),
        ({"status": ""}, "status"),  # an empty value is no "any": the schema says a listed value
        ({"created_from": "yesterday"}, "created_from"),
        ({"q": "a\x00b"}, "q"),
        ({"page": "two"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
    ],
)
def test_an_invalid_parameter_is_400_naming_it(api, params, field):
    response = api.get(DETECTIONS, params)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_of(response)["field"] == field


# One detection


def test_a_detection_reads_with_its_verdict_faces_and_heatmap_urls(api, stub_detector):
    pk = post_images(api).json()["results"][0]["detection"]["id"]
    body = api.get(detail(pk)).json()
    assert body["status"] == "done" and body["label"] == "Deepfake" and body["model_version"] == "stub-1"
    assert body["fake_probability"] == pytest.approx(0.9) and body["threshold"] == 0.5 and body["confidence"] > 0.5
    assert body["page"] == "http://testserver" + reverse("detector:result", args=[pk])
    [face] = body["faces"]
    assert face["number"] == 1 and face["box"] == {"x": 80, "y": 60, "width": 160, "height": 120}
    assert face["heatmap_url"] == "http://testserver" + reverse("api:face_image", args=[pk, 1, "heatmap"])


@pytest.mark.parametrize("kind", ["crop", "heatmap"])
def test_a_faces_picture_is_served_to_a_token_holder(api, tiny_detector, kind):
    face = post_images(api, portrait_file()).json()["results"][0]["detection"]["faces"][0]
    response = api.get(face[f"{kind}_url"], headers={"Accept": "image/png"})
    assert response.status_code == HTTPStatus.OK and response["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).format == "PNG"


def test_an_unknown_face_is_a_json_404(api, tiny_detector):
    pk = post_images(api).json()["results"][0]["detection"]["id"]
    response = api.get(reverse("api:face_image", args=[pk, 7, "heatmap"]), headers={"Accept": "image/png"})
    assert response.status_code == HTTPStatus.NOT_FOUND and error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    "method, url_for",
    [
        ("get", detail),
        ("delete", detail),
        ("get", lambda pk: reverse("api:face_image", args=[pk, 1, "heatmap"])),
    ],
)
def test_someone_elses_detection_is_404(api, other_user, stub_detector, method, url_for):
    bob = Client()
    bob.force_login(other_user)
    post_images(bob)
    bobs = Detection.objects.get()
    response = getattr(api, method)(url_for(bobs.pk))
    assert response.status_code == HTTPStatus.NOT_FOUND and error_of(response)["code"] == "not_found"
    assert Detection.objects.filter(pk=bobs.pk).exists()


def test_deleting_removes_the_row_and_its_files(api, stub_detector, media_root, django_capture_on_commit_callbacks):
    pk = post_images(api).json()["results"][0]["detection"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(detail(pk))
    assert response.status_code == HTTPStatus.NO_CONTENT
    assert not Detection.objects.exists() and stored_files(media_root) == []
    assert api.get(detail(pk)).status_code == HTTPStatus.NOT_FOUND


# The model


def test_the_model_endpoint_gives_version_thresholds_training_and_metrics(api, settings, tiny_bundle):
    settings.DETECTOR_MODEL = tiny_bundle
    body = api.get(MODEL).json()
    assert body["name"] == "tiny" and body["version"] == "tiny-1" and body["input_size"] == 32
    assert body["thresholds"]["deepfake_from"] == 0.5
    assert body["training"]["dataset"] == "generated in tests" and body["training"]["val_images"] is None
    assert body["test_metrics"] is None and body["loaded"] in (True, False) and body["members"] == []


def test_the_model_endpoint_gives_the_shipped_models_test_metrics(api):
    from detector.services.inference import bundle_facts

    facts = bundle_facts()
    body = api.get(MODEL).json()
    assert body["version"] == facts["meta"].version
    members = [(m["bundle"], m["version"], m["images"]) for m in facts["trained"]["models"]]
    assert [(m["bundle"], m["version"], m["train_images"]) for m in body["members"]] == members
    assert body["training"]["train_images"] == facts["meta"].training.get("train_images")  # an ensemble: None
    assert body["test_metrics"]["overall"]["auc"] == pytest.approx(facts["metrics"]["overall"]["auc"])


def test_the_model_endpoint_is_503_without_a_bundle(api, settings, tmp_path):
    settings.DETECTOR_MODEL = tmp_path / "missing"
    response = api.get(MODEL)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert error_of(response)["code"] == "model_unavailable"


# Other errors


@pytest.mark.parametrize("path", ["/api/v1/nothing-here/", "/api/v1/detections", "/api/v1/detections/not-a-uuid/"])
def test_other_api_addresses_are_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == HTTPStatus.NOT_FOUND and error_of(response)["code"] == "not_found"


def test_an_unsupported_method_is_a_json_405(api):
    response = api.put(DETECTIONS)
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert error_of(response)["code"] == "method_not_allowed"


# Tokens


def test_create_api_token_prints_a_working_key_on_its_last_line(user, stub_detector, capsys):
    call_command("create_api_token", "alice")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiToken.objects.get(user=user).name == "command line"
    assert Client(headers={"Authorization": f"Token {key}"}).get(DETECTIONS).status_code == HTTPStatus.OK


def test_create_api_token_makes_another_key_each_time_and_keeps_none_in_clear(user, capsys):
    keys = []
    for _ in range(2):
        call_command("create_api_token", "alice")
        keys.append(capsys.readouterr().out.strip())
    assert keys[0] != keys[1] and ApiToken.objects.filter(user=user).count() == 2
    stored = str(list(ApiToken.objects.values()))
    assert not ApiToken.objects.filter(key_hash__in=keys).exists() and keys[0] not in stored


def test_create_api_token_reset_revokes_the_other_keys_and_the_old_token(token, capsys):
    call_command("create_api_token", "alice")
    first = capsys.readouterr().out.strip()
    call_command("create_api_token", "alice", "--reset")
    key = capsys.readouterr().out.strip()
    assert key not in (token, first) and not Token.objects.filter(key=token).exists()
    for old in (token, first):
        assert Client(headers={"Authorization": f"Token {old}"}).get(DETECTIONS).status_code == HTTPStatus.UNAUTHORIZED
    assert Client(headers={"Authorization": f"Token {key}"}).get(DETECTIONS).status_code == HTTPStatus.OK


def test_create_api_token_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("create_api_token", "nobody")


def test_reviewers_manage_tokens_in_the_admin(client, staff, token):
    client.force_login(staff)
    page = client.get(reverse("admin:authtoken_tokenproxy_changelist"))
    assert page.status_code == HTTPStatus.OK and "alice" in page.content.decode()


def test_anonymous_uploads_need_the_csrf_token(stub_detector, settings, media_root):
    settings.DETECTOR_API_ANONYMOUS = True
    browser = Client(enforce_csrf_checks=True)
    forged = post_images(browser, headers={"Origin": "https://evil.example"})
    assert forged.status_code == HTTPStatus.FORBIDDEN and error_of(forged)["code"] == "permission_denied"
    assert not Detection.objects.exists() and stored_files(media_root) == []
    browser.get(reverse("detector:upload"))  # the site's page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    assert post_images(browser, headers={"X-CSRFToken": token}).status_code == HTTPStatus.CREATED
