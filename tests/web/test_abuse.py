"""Upload rate limits, and the headers that keep pages from being abused."""

import os
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from detector.models import Detection
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
UPLOAD = reverse("detector:upload")


def test_uploads_over_the_rate_get_429_with_retry_after(client, stub_detector, settings):
    settings.DETECTOR_RATE_LIMIT = "2/h"
    for _ in range(2):
        assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND
    response = client.post(UPLOAD, {"image": upload_file()})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 0 < int(response["Retry-After"]) <= 3600
    assert "Too many uploads" in response.content.decode()
    assert Detection.objects.count() == 2 and stub_detector.calls == 2


def test_the_limit_is_per_user(client, stub_detector, settings, user, other_user):
    settings.DETECTOR_RATE_LIMIT = "1/h"
    client.force_login(user)
    client.post(UPLOAD, {"image": upload_file()})
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    bob = Client()
    bob.force_login(other_user)
    assert bob.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND


def test_json_clients_get_429_as_json(client, stub_detector, settings):
    settings.DETECTOR_RATE_LIMIT = "1/h"
    client.post(UPLOAD, {"image": upload_file()})
    response = client.post(UPLOAD, {"image": upload_file()}, headers={"Accept": "application/json"})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS and "Retry-After" in response
    assert response.json()["error"]["code"] == "rate_limited"
    assert "Too many uploads" in response.json()["error"]["message"]


def test_pages_carry_a_strict_content_security_policy(client):
    response = client.get(UPLOAD)
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    page = response.content.decode()
    assert "<script>" not in page and " style=" not in page


def redis_url():
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at {url}")
    return url


def test_the_rate_limit_works_with_a_shared_redis_cache(client, stub_detector, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url()}}
    from django.core.cache import cache

    cache.clear()
    settings.DETECTOR_RATE_LIMIT = "1/h"
    try:
        assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND
        assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    finally:
        cache.clear()


def test_a_bad_host_header_is_logged_in_one_line(client, caplog):
    """It is the client's error: the configured handler writes the record Django logs as one line, no traceback."""
    import logging

    response = client.get("/", HTTP_HOST="evil.example")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.exc_info is None  # Django handed over the whole traceback; the handler's filter dropped it
    (handler,) = [h for h in logging.getLogger("django.security").handlers if h.filters]  # the configured one
    assert handler.filter(record)
    written = handler.format(record)
    assert "\n" not in written and "Invalid HTTP_HOST header: 'evil.example'" in written
