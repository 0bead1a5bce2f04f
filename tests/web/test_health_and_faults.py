"""Health endpoints, and faults that must give clear errors without half-written state."""

import os
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from detector.models import Detection
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
UPLOAD = reverse("detector:upload")


def stored(media_root):
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


def test_healthz_answers(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_503_until_the_model_is_loaded(client, monkeypatch):
    from detector.services import inference

    monkeypatch.setattr(inference, "_detector", None)
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["checks"] == {"model": False, "database": True, "media": True, "cache": True, "broker": None}


def test_readyz_is_200_when_everything_works(client, stub_detector):
    assert client.get("/readyz").status_code == HTTPStatus.OK


@pytest.fixture
def disk_full(monkeypatch):
    from django.core.files.storage import FileSystemStorage

    def fail(self, name, content, max_length=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", fail)


def test_readyz_reports_unwritable_media(client, stub_detector, disk_full, caplog):
    response = client.get("/readyz")
    assert "media storage is not writable" in caplog.text and "Traceback" in caplog.text
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE and response.json()["checks"]["media"] is False


def test_unwritable_media_gives_a_clear_error_and_no_row(client, stub_detector, media_root, disk_full):
    response = client.post(UPLOAD, {"image": upload_file()})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "could not be stored" in response.content.decode()
    assert not Detection.objects.exists() and stored(media_root) == []


def test_a_database_that_is_down_gives_a_503_page_and_no_orphaned_file(client, stub_detector, media_root, monkeypatch):
    def locked(self, *args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(Detection, "save", locked)
    response = client.post(UPLOAD, {"image": upload_file()})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE and response["Retry-After"]
    assert "Nothing from this request was stored" in response.content.decode()
    assert stored(media_root) == []


def age(detection, minutes):
    Detection.objects.filter(pk=detection.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))


def test_cleanup_finishes_stuck_detections_and_removes_orphans(client, stub_detector, media_root, capsys):
    client.post(UPLOAD, {"image": upload_file("stuck.jpg")})
    client.post(UPLOAD, {"image": upload_file("lost.jpg")})
    stuck, lost = Detection.objects.get(original_name="stuck.jpg"), Detection.objects.get(original_name="lost.jpg")
    Detection.objects.filter(pk=stuck.pk).update(status="pending", label="")
    (media_root / lost.image.name).unlink()
    orphan = media_root / "uploads" / "no-row.jpg"
    orphan.write_bytes(b"x")
    old = (timezone.now() - timedelta(hours=1)).timestamp()
    for path in stored(media_root):
        os.utime(path, (old, old))
    age(stuck, 60)
    age(lost, 60)

    call_command("cleanup_detections")

    assert "remove 1 orphan file(s); remove 1 row(s) without their file; re-analyse 1" in capsys.readouterr().out
    assert not orphan.exists()
    assert not Detection.objects.filter(pk=lost.pk).exists()
    assert not any(lost.pk.hex[:8] in p.name for p in stored(media_root))
    assert Detection.objects.get(pk=stuck.pk).status == "done"


def test_cleanup_leaves_young_files_and_rows_alone(client, stub_detector, media_root):
    client.post(UPLOAD, {"image": upload_file()})
    Detection.objects.update(status="pending")
    young_orphan = media_root / "uploads" / "in-progress.jpg"
    young_orphan.write_bytes(b"x")
    call_command("cleanup_detections")
    assert young_orphan.exists() and Detection.objects.get().status == "pending"


def test_cleanup_dry_run_changes_nothing(client, stub_detector, media_root, capsys):
    orphan = media_root / "uploads" / "no-row.jpg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    old = (timezone.now() - timedelta(hours=1)).timestamp()
    os.utime(orphan, (old, old))
    call_command("cleanup_detections", "--dry-run")
    assert "would remove 1 orphan" in capsys.readouterr().out and orphan.exists()


def test_cleanup_never_empties_the_database_when_the_media_folder_is_empty(client, stub_detector, settings, capsys):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        client.post(UPLOAD, {"image": upload_file(name)})
    Detection.objects.update(created_at=timezone.now() - timedelta(hours=1))
    settings.MEDIA_ROOT = settings.MEDIA_ROOT.parent / "not-mounted"  # an empty folder where the share should be
    settings.MEDIA_ROOT.mkdir()
    call_command("cleanup_detections", "--grace-minutes", "0")
    out = capsys.readouterr()
    assert Detection.objects.count() == 3
    assert "remove 0 row(s) without their file" in out.out and "every one of the 3 rows checked looks lost" in out.err
    call_command("cleanup_detections", "--grace-minutes", "0", "--force")
    assert Detection.objects.count() == 0


def test_cleanup_removes_no_more_than_its_bound_in_one_run(client, stub_detector, media_root, settings, capsys):
    settings.DETECTOR_CLEANUP_MAX_REMOVALS = 1
    for name in ("keep.jpg", "lost1.jpg", "lost2.jpg"):
        client.post(UPLOAD, {"image": upload_file(name)})
    Detection.objects.update(created_at=timezone.now() - timedelta(hours=1))
    for detection in Detection.objects.exclude(original_name="keep.jpg"):
        (media_root / detection.image.name).unlink()
    call_command("cleanup_detections", "--grace-minutes", "0")
    assert Detection.objects.count() == 3 and "2 rows look lost, more than the 1" in capsys.readouterr().err
    settings.DETECTOR_CLEANUP_MAX_REMOVALS = 2
    call_command("cleanup_detections", "--grace-minutes", "0")
    assert list(Detection.objects.values_list("original_name", flat=True)) == ["keep.jpg"]


def test_the_sweep_never_forces_a_cleanup(client, stub_detector, settings):
    from detector import tasks

    client.post(UPLOAD, {"image": upload_file()})
    Detection.objects.update(created_at=timezone.now() - timedelta(hours=1))
    settings.MEDIA_ROOT = settings.MEDIA_ROOT.parent / "empty"
    settings.MEDIA_ROOT.mkdir()
    settings.DETECTOR_STUCK_AFTER_MINUTES = 0
    counts = tasks.sweep.apply().get()
    assert counts["refused"] == 1 and Detection.objects.count() == 1


@pytest.fixture
def sessions_down(monkeypatch):
    """The database is down for whatever reads the session (as for every request that carries a cookie)."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    def down(self):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    monkeypatch.setattr(SessionStore, "_get_session_from_db", down)


@pytest.mark.parametrize("path", ["/", "/history/", "/about-the-model/"])
def test_a_database_that_is_down_is_a_503_page_even_with_a_session_cookie(client, stub_detector, sessions_down, path):
    client.cookies["sessionid"] = "abcdefghijklmnopqrstuvwxyz012345"
    response = client.get(path)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE and response["Retry-After"]
    assert "Temporarily unavailable" in response.content.decode()


def test_a_database_error_outside_the_views_is_a_503_too(client, stub_detector, monkeypatch):
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    def down(self, must_create=False):
        raise OperationalError("database is locked")

    monkeypatch.setattr(SessionStore, "save", down)
    client.raise_request_exception = False
    response = client.post(UPLOAD, {"image": upload_file()})  # the anonymous owner's session is saved after the view
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "may have been kept" in response.content.decode()


@pytest.fixture
def cache_down(settings):
    """A Redis cache at an address where nothing answers."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }


def test_a_cache_that_is_down_lets_uploads_through_uncounted_by_default(client, stub_detector, cache_down):
    assert client.post(UPLOAD, {"image": upload_file()}).status_code == HTTPStatus.FOUND
    assert Detection.objects.get().status == "done"
    ready = client.get("/readyz")
    assert ready.status_code == HTTPStatus.OK and ready.json()["checks"]["cache"] is False


def test_a_cache_that_is_down_refuses_uploads_with_a_503_where_the_limit_fails_closed(
    client, stub_detector, cache_down, settings, media_root
):
    settings.DETECTOR_RATE_LIMIT_FAIL_OPEN = False
    response = client.post(UPLOAD, {"image": upload_file()}, headers={"accept": "application/json"})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE and response["Retry-After"]
    assert response.json()["error"]["code"] == "rate_limit_unavailable"
    assert not Detection.objects.exists() and stored(media_root) == []
    assert client.get("/readyz").status_code == HTTPStatus.SERVICE_UNAVAILABLE


def test_readyz_reports_a_broker_that_does_not_answer(client, stub_detector, settings, monkeypatch):
    from deepfake_site.celery import app

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(app.conf, "broker_url", settings.CELERY_BROKER_URL)
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.OK and response.json()["checks"]["broker"] is False


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_probes_over_plain_http_are_not_redirected(client, stub_detector, settings, path):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get(path).status_code == HTTPStatus.OK
    assert client.get("/").status_code == HTTPStatus.MOVED_PERMANENTLY  # the pages still go to HTTPS
