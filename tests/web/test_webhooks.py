"""For the teams that wire it in: callbacks when an analysis ends, keys people make, checks by link.

Against real HTTP servers on 127.0.0.1 that these tests start (tests/servers.py); names resolve through the
tests' resolver (tests/resolver.py), so nothing waits on DNS and nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from detector.models import ApiToken, DeliveryStatus, Detection, Webhook, WebhookDelivery
from detector.services import outbound, tokens, webhooks
from tests.conftest import ROOT, image_bytes
from tests.servers import Reply, Server
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
DETECTIONS, WEBHOOKS = reverse("api:detections"), reverse("api:webhooks")


def documented_receiver() -> dict:
    """The receiver of docs/api.md, run as it is written there."""
    text = (ROOT / "docs" / "api.md").read_text()
    code = re.search(r"<!-- receiver -->\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {"__name__": "receiver"}
    import os

    os.environ.setdefault("DEEPFAKE_CHECK_SECRET", "unused")
    exec(compile(code, "docs/api.md", "exec"), namespace)
    return namespace


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def loopback(settings):
    """Development on loopback: private addresses and plain http allowed."""
    settings.DETECTOR_ALLOW_PRIVATE_URLS = True
    settings.DETECTOR_WEBHOOK_TIMEOUT = 1
    settings.DETECTOR_FETCH_TIMEOUT = 2


def register(api, url) -> dict:
    response = api.post(WEBHOOKS, {"url": url}, content_type="application/json")
    assert response.status_code == HTTPStatus.CREATED, response.content
    return response.json()


# -- callbacks ---------------------------------------------------------------------------------------------------


def test_a_callback_is_delivered_signed_as_documented(api, stub_detector, server, loopback):
    hook = register(api, server.base + "/hook")
    assert hook["secret"].startswith("whsec_") and hook["url"] == server.base + "/hook"
    assert hook["secret"] not in json.dumps(api.get(WEBHOOKS).json())  # shown once
    pk = api.post(DETECTIONS, {"image": upload_file()}).json()["results"][0]["detection"]["id"]
    assert webhooks.send_due() == {"delivered": 1, "failed": 0, "disabled": 0}
    (got,) = server.received
    body = json.loads(got.body)
    assert body["event"] == "detection.done" and body["detection"]["id"] == pk
    assert body["detection"]["label"] == "Deepfake" and body["detection"]["model_version"] == "stub-1"
    assert body["detection"]["url"].endswith(f"/api/v1/detections/{pk}/")
    receiver = documented_receiver()
    assert receiver["verify"](got.headers["X-Signature"], got.body, hook["secret"])
    assert not receiver["verify"](got.headers["X-Signature"], got.body + b" ", hook["secret"])
    assert not receiver["verify"](got.headers["X-Signature"], got.body, "whsec_another")
    listed = api.get(WEBHOOKS).json()["results"][0]["deliveries"][0]
    assert listed["status"] == "delivered" and listed["attempt_log"][0]["status_code"] == 200


def test_a_failed_analysis_sends_detection_failed(api, stub_detector, server, loopback):
    register(api, server.base + "/hook")
    stub_detector.error = ValueError("no faces today")
    api.post(DETECTIONS, {"image": upload_file()})
    webhooks.send_due()
    body = json.loads(server.received[0].body)
    assert body["event"] == "detection.failed" and body["detection"]["status"] == "failed"


def later(monkeypatch, minutes: float):
    """Move the callbacks' clock on by ``minutes``."""
    moved = timezone.now() + timedelta(minutes=minutes)
    monkeypatch.setattr(webhooks.timezone, "now", lambda: moved)


def test_a_callback_is_retried_after_a_500_and_a_timeout_then_delivered(
    api, stub_detector, server, loopback, monkeypatch
):
    server.replies = [Reply(500, b"down"), Reply(200, b"slow", delay=2.0), Reply(204, b"")]
    register(api, server.base + "/hook")
    api.post(DETECTIONS, {"image": upload_file()})
    assert webhooks.send_due()["failed"] == 1
    assert webhooks.send_due() == {"delivered": 0, "failed": 0, "disabled": 0}  # not due again yet
    later(monkeypatch, 1.5)
    assert webhooks.send_due()["failed"] == 1  # the slow answer: over the 1 s limit
    later(monkeypatch, 1.5 + 2.5)
    assert webhooks.send_due()["delivered"] == 1
    delivery = WebhookDelivery.objects.get()
    log = list(delivery.attempt_log.order_by("at", "id"))
    assert [(a.status_code, a.ok) for a in log] == [(500, False), (None, False), (204, True)]
    assert "answered 500" in log[0].error and "within 1 seconds" in log[1].error
    assert delivery.status == DeliveryStatus.DELIVERED and Webhook.objects.get().failing_since is None


def test_the_backoff_doubles_and_stops_at_six_hours():
    assert [webhooks.backoff(n).total_seconds() / 60 for n in (1, 2, 3, 9)] == [1, 2, 4, 256]
    assert webhooks.backoff(20) == timedelta(hours=6)


def test_an_endpoint_failing_for_a_day_is_disabled_and_its_owner_told(
    alice, user, stub_detector, server, loopback, monkeypatch
):
    server.replies = [Reply(503, b"maintenance")]
    webhook, _ = webhooks.register(user, server.base + "/hook")
    for _ in range(2):
        alice.post(reverse("detector:upload"), {"image": upload_file()})
    webhooks.send_due()
    later(monkeypatch, 60 * 24 + 1)
    assert webhooks.send_due()["disabled"] == 1
    webhook.refresh_from_db()
    assert not webhook.active and "every attempt since" in webhook.disabled_reason
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.ABANDONED}
    page = alice.get(reverse("webhooks")).content.decode()
    assert "Nothing more is sent" in page and "503" in page
    assert "one is disabled" in alice.get(reverse("account")).content.decode()


def test_nothing_is_sent_to_a_refused_address_even_one_registered_before(
    api, user, stub_detector, server, settings, loopback
):
    webhooks.register(user, server.base + "/hook")  # allowed then (development)
    settings.DETECTOR_ALLOW_PRIVATE_URLS = False  # and not any more
    api.post(DETECTIONS, {"image": upload_file()})
    assert webhooks.send_due()["failed"] == 1 and server.received == []
    assert "not accepted here" in WebhookDelivery.objects.get().attempt_log.get().error


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://hooks.example.org/x", "plain http"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://intranet.example.org/x", "private network"),
        ("https://metadata.example.org/latest/meta-data", "metadata"),
        ("https://169.254.169.254/", "metadata"),
        ("https://[::1]/x", "loopback"),
        ("https://rebind.example.org/x", "loopback"),
        ("https://nowhere.invalid/x", "does not resolve"),
        ("ftp://hooks.example.org/x", "only http and https"),
    ],
)
def test_refused_addresses_are_refused_when_registered(api, url, words):
    response = api.post(WEBHOOKS, {"url": url}, content_type="application/json")
    assert response.status_code == HTTPStatus.BAD_REQUEST and words in response.json()["error"]["message"]
    assert not Webhook.objects.exists()


def test_a_public_https_address_is_registered_and_removed(api, user):
    hook = register(api, "https://hooks.example.org/deepfake")
    assert api.delete(reverse("api:webhook", args=[hook["id"]])).status_code == HTTPStatus.NO_CONTENT
    assert not Webhook.objects.exists()
    assert api.delete(reverse("api:webhook", args=[hook["id"]])).status_code == HTTPStatus.NOT_FOUND


def test_no_callback_is_sent_for_a_check_deleted_before_it_went(api, stub_detector, server, loopback):
    register(api, server.base + "/hook")
    pk = api.post(DETECTIONS, {"image": upload_file()}).json()["results"][0]["detection"]["id"]
    assert api.delete(reverse("api:detection", args=[pk])).status_code == HTTPStatus.NO_CONTENT
    assert webhooks.send_due() == {"delivered": 0, "failed": 0, "disabled": 0}
    assert server.received == [] and not WebhookDelivery.objects.exists()


def test_someone_elses_callbacks_are_neither_listed_nor_removable(api, other_user):
    theirs, _ = webhooks.register(other_user, "https://hooks.example.org/theirs")
    assert api.get(WEBHOOKS).json()["results"] == []
    assert api.delete(reverse("api:webhook", args=[theirs.pk])).status_code == HTTPStatus.NOT_FOUND


def test_a_delivery_is_claimed_once(api, stub_detector, server, loopback):
    register(api, server.base + "/hook")
    api.post(DETECTIONS, {"image": upload_file()})
    pk = WebhookDelivery.objects.get().pk
    assert webhooks.claim(pk) is not None and webhooks.claim(pk) is None  # a second sender gets nothing


@pytest.mark.django_db(transaction=True)  # the pool's thread has its own connection: the rows must be committed
def test_without_a_broker_the_pool_sends_after_the_upload(alice, user, stub_detector, server, loopback):
    import threading

    from detector import dispatch

    webhooks.register(user, server.base + "/hook")
    request_thread = threading.current_thread()
    alice.post(reverse("detector:upload"), {"image": upload_file()})
    dispatch._video_pool().submit(lambda: None).result(timeout=10)
    for _ in range(100):  # the pool's other threads may still be sending
        if server.received:
            break
        threading.Event().wait(0.05)
    assert len(server.received) == 1 and threading.current_thread() is request_thread


def test_with_a_broker_the_job_is_queued_not_run_in_the_request(
    alice, user, stub_detector, settings, monkeypatch, loopback, django_capture_on_commit_callbacks
):
    from detector import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    analysed, sent = [], []
    monkeypatch.setattr(tasks.analyse_detection, "delay", analysed.append)
    monkeypatch.setattr(tasks.send_webhooks, "delay", lambda: sent.append(1))
    webhooks.register(user, "https://hooks.example.org/x")
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("detector:upload"), {"image": upload_file()})
    assert sent == []  # nothing due before the worker has analysed it
    tasks.analyse_detection.apply(args=analysed)
    assert sent == [1] and WebhookDelivery.objects.count() == 1


def test_the_account_pages_register_a_callback_and_show_the_secret_once(alice, user):
    response = alice.post(reverse("webhooks"), {"url": "https://hooks.example.org/page"})
    page = response.content.decode()
    assert "Its signing secret, shown this once" in page
    secret = re.search(r'id="new-secret">([^<]+)<', page).group(1)
    assert webhooks.secret_of(Webhook.objects.get()) == secret
    assert secret not in alice.get(reverse("webhooks")).content.decode()
    refused = alice.post(reverse("webhooks"), {"url": "https://intranet.example.org/x"}).content.decode()
    assert "private network" in refused and Webhook.objects.count() == 1


# -- keys people make ----------------------------------------------------------------------------------------------


def test_people_make_name_use_and_revoke_their_own_keys(alice, user, stub_detector):
    page = alice.post(reverse("tokens"), {"name": "newsroom pipeline"}).content.decode()
    key = re.search(r'id="new-key">([^<]+)<', page).group(1)
    token = ApiToken.objects.get()
    assert token.name == "newsroom pipeline" and key.startswith(token.prefix) and key not in token.key_hash
    assert key not in alice.get(reverse("tokens")).content.decode()  # shown once
    script = Client(headers={"Authorization": f"Token {key}"})
    assert script.get(DETECTIONS).status_code == HTTPStatus.OK
    assert ApiToken.objects.get().last_used_at is not None
    listed = alice.get(reverse("tokens")).content.decode()
    assert "newsroom pipeline" in listed and "never" not in listed  # its last use is shown
    alice.post(reverse("tokens"), {"revoke": token.pk})
    assert script.get(DETECTIONS).status_code == HTTPStatus.UNAUTHORIZED


def test_several_keys_each_work_and_a_wrong_one_does_not(user, stub_detector):
    keys = [tokens.create(user, f"script {n}")[1] for n in range(3)]
    for key in keys:
        assert Client(headers={"Authorization": f"Token {key}"}).get(DETECTIONS).status_code == HTTPStatus.OK
    forged = keys[0][:-4] + "AAAA"
    assert Client(headers={"Authorization": f"Token {forged}"}).get(DETECTIONS).status_code == 401


def test_someone_else_cannot_revoke_a_key(user, other_user):
    token, key = tokens.create(user, "mine")
    assert not tokens.revoke(other_user, token.pk)
    assert tokens.authenticate(key) is not None


def test_the_pages_link_the_api_docs_and_the_keys(alice):
    page = alice.get(reverse("detector:upload")).content.decode()
    assert reverse("api:docs") in page and reverse("tokens") in page


# -- checks by link -------------------------------------------------------------------------------------------------


@pytest.fixture
def links(settings, loopback):
    settings.DETECTOR_FETCH_URLS = True


def test_an_image_is_fetched_by_link_and_analysed(api, stub_detector, server, links):
    server.routes["/photos/portrait.jpg"] = Reply(200, image_bytes("JPEG"), {"Content-Type": "image/jpeg"})
    url = server.base + "/photos/portrait.jpg"
    response = api.post(DETECTIONS, {"url": url}, content_type="application/json")
    assert response.status_code == HTTPStatus.CREATED
    detection = response.json()["results"][0]["detection"]
    assert detection["status"] == "done" and detection["source_url"] == url and detection["file_name"] == "portrait.jpg"
    assert Detection.objects.get().source_url == url


def test_a_video_is_fetched_by_link_and_analysed(alice, server, links, settings, django_capture_on_commit_callbacks):
    from tests.clips import SquareDetector
    from tests.conftest import installed
    from tests.web.test_video import fake_and_real

    settings.DETECTOR_VIDEO_WORKERS = 0
    server.routes["/clip.mp4"] = Reply(200, fake_and_real(), {"Content-Type": "video/mp4"})
    with installed(SquareDetector()), django_capture_on_commit_callbacks(execute=True):
        response = alice.post(reverse("detector:upload_link"), {"url": server.base + "/clip.mp4"})
    detection = Detection.objects.get()
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == detection.get_absolute_url()
    assert detection.kind == "video" and detection.status == "done" and detection.label == "Deepfake"
    assert "Fetched from" in alice.get(detection.get_absolute_url()).content.decode()


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/secret", "http://169.254.169.254/latest/meta-data"])
def test_a_redirect_to_a_refused_address_is_refused(api, stub_detector, server, settings, monkeypatch, target):
    """The first address is public (as the resolver says); where it sends the fetcher is checked again."""
    settings.DETECTOR_FETCH_URLS = True
    server.routes["/photo.jpg"] = Reply(302, b"", {"Location": target.format(port=server.port)})
    connect = outbound._pool

    def to_the_test_server(target_, timeout):  # the public address's transport, for the first hop only
        if target_.address == "93.184.216.35":
            target_ = outbound.Target(target_.url, "http", target_.host, server.port, "127.0.0.1", target_.path)
        return connect(target_, timeout)

    monkeypatch.setattr(outbound, "_pool", to_the_test_server)
    response = api.post(DETECTIONS, {"url": "https://media.example.org/photo.jpg"}, content_type="application/json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == "url_refused" and error["field"] == "url"
    assert [r.path for r in server.received] == ["/photo.jpg"] and not Detection.objects.exists()


def test_more_than_three_redirects_are_refused(api, stub_detector, server, links):
    for n in range(5):
        server.routes[f"/r{n}"] = Reply(302, b"", {"Location": f"/r{n + 1}"})
    response = api.post(DETECTIONS, {"url": server.base + "/r0"}, content_type="application/json")
    assert (
        response.json()["error"]["code"] == "fetch_failed"
        and "more than 3 redirects" in response.json()["error"]["message"]
    )
    assert len(server.received) == 4


def test_a_body_larger_than_the_limit_is_cut_off_and_refused(api, stub_detector, server, links, settings):
    settings.DETECTOR_MAX_UPLOAD_MB = settings.DETECTOR_MAX_VIDEO_MB = 0.5
    server.routes["/big.jpg"] = Reply(200, b"\xff\xd8" + b"x" * 2_000_000, {"Content-Type": "image/jpeg"})
    response = api.post(DETECTIONS, {"url": server.base + "/big.jpg"}, content_type="application/json")
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["error"]["code"] == "file_too_large" and not Detection.objects.exists()


def test_a_slow_server_is_timed_out(api, stub_detector, server, links, settings):
    settings.DETECTOR_FETCH_TIMEOUT = 1
    server.routes["/slow.jpg"] = Reply(200, image_bytes("JPEG"), {"Content-Type": "image/jpeg"}, trickle=0.05)
    response = api.post(DETECTIONS, {"url": server.base + "/slow.jpg"}, content_type="application/json")
    assert (
        response.json()["error"]["code"] == "fetch_failed" and "within 1 seconds" in response.json()["error"]["message"]
    )


def test_a_web_page_is_refused_with_its_message(alice, server, links, stub_detector):
    server.routes["/article"] = Reply(
        200, b"<!doctype html><html><img src=a.jpg></html>", {"Content-Type": "text/html"}
    )
    page = alice.post(reverse("detector:upload_link"), {"url": server.base + "/article"}).content.decode()
    assert "leads to a web page, not to an image or a video" in page and not Detection.objects.exists()


def test_checks_by_link_are_off_unless_the_setting_says(api, stub_detector, settings):
    settings.DETECTOR_FETCH_URLS = False
    response = api.post(DETECTIONS, {"url": "https://media.example.org/a.jpg"}, content_type="application/json")
    assert response.status_code == HTTPStatus.FORBIDDEN and response.json()["error"]["code"] == "fetch_disabled"
    assert 'id="link-form"' not in Client().get(reverse("detector:upload")).content.decode()


def test_the_readme_documents_the_api_examples():
    text = Path(ROOT / "docs" / "api.md").read_text()
    assert "/api/v1/webhooks/" in text and "X-Signature" in text and '"url"' in text


def test_reviewers_see_every_attempt_in_the_admin(api, reviewer, stub_detector, server, loopback):
    server.replies = [Reply(500, b"no")]
    hook = register(api, server.base + "/hook")
    api.post(DETECTIONS, {"image": upload_file()})
    webhooks.send_due()
    page = reviewer.get(reverse("admin:detector_webhook_change", args=[hook["id"]])).content.decode()
    assert "answered 500" in page and hook["secret"] not in page and "secret_encrypted" not in page
    assert reviewer.get(reverse("admin:detector_apitoken_changelist")).status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/plain", b"https://hooks.example.org/x"),
        ("multipart/form-data; boundary=b", b"--b\r\nr\xc2\x84\xb1T--b--\r\n"),  # a part with no headers
    ],
)
def test_a_body_that_is_neither_json_nor_form_data_is_refused_with_a_documented_status(api, content_type, body):
    from tests.web.test_api_schema import generated_schema

    response = api.generic("POST", WEBHOOKS, body, content_type=content_type)
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    assert response.json()["error"]["message"] and not Webhook.objects.exists()
    documented = generated_schema()["paths"]["/api/v1/webhooks/"]["post"]["responses"]
    assert str(response.status_code) in documented
