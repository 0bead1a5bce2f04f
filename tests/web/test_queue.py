"""Analysis as a queued job: the upload stores a pending detection, a worker's task finishes it exactly once.

Here the broker is replaced by capturing what would be sent; tests/integration runs real workers on Redis.
"""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from detector import tasks
from detector.models import Detection, Status
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(settings, monkeypatch):
    """A broker is configured: uploads are queued; the ids sent to it are collected here."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.analyse_detection, "delay", lambda pk: sent.append(pk))
    return sent


def upload(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("detector:upload"), {"image": upload_file()}, headers={"accept": "application/json"})


def test_without_a_broker_the_upload_is_analysed_at_once(client, stub_detector, django_capture_on_commit_callbacks):
    response = upload(client, django_capture_on_commit_callbacks)
    assert response.json()["status"] == "done"
    assert Detection.objects.get().attempts == 1


def test_with_a_broker_the_upload_is_stored_pending_and_queued_after_commit(
    client, stub_detector, queued, django_capture_on_commit_callbacks
):
    response = upload(client, django_capture_on_commit_callbacks)
    assert response.status_code == HTTPStatus.CREATED
    body = response.json()
    assert body["status"] == "pending" and body["label"] == ""
    assert queued == [body["id"]]
    assert stub_detector.calls == 0


def test_the_result_page_of_a_queued_detection_polls_its_status(
    client, stub_detector, queued, django_capture_on_commit_callbacks
):
    body = upload(client, django_capture_on_commit_callbacks).json()
    page = client.get(body["url"]).content.decode()
    assert "Queued…" in page
    assert f'data-status-url="{body["status_url"]}"' in page
    assert "detector/status.js" in page


def test_the_status_endpoint_follows_the_detection_to_done(
    client, stub_detector, queued, django_capture_on_commit_callbacks
):
    body = upload(client, django_capture_on_commit_callbacks).json()
    assert client.get(body["status_url"]).json()["status"] == "pending"
    tasks.analyse_detection.apply(args=[body["id"]])
    status = client.get(body["status_url"]).json()
    assert status["status"] == "done" and status["label"] == "Deepfake" and status["fake_percent"] == 90


def test_someone_elses_status_is_404(client, stub_detector, queued, django_capture_on_commit_callbacks, alice):
    body = upload(alice, django_capture_on_commit_callbacks).json()
    alice.logout()
    assert client.get(body["status_url"]).status_code == HTTPStatus.NOT_FOUND


def test_the_api_shows_a_queued_detection_as_pending(api, stub_detector, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("api:detections"), {"image": upload_file()})
    assert response.status_code == HTTPStatus.CREATED
    detection_id = queued[0]
    assert api.get(reverse("api:detection", args=[detection_id])).json()["status"] == "pending"
    tasks.analyse_detection.apply(args=[detection_id])
    assert api.get(reverse("api:detection", args=[detection_id])).json()["status"] == "done"


def test_a_job_delivered_twice_analyses_once(client, stub_detector, queued, django_capture_on_commit_callbacks):
    detection_id = upload(client, django_capture_on_commit_callbacks).json()["id"]
    assert tasks.analyse_detection.apply(args=[detection_id]).get() == "done"
    assert tasks.analyse_detection.apply(args=[detection_id]).get() == "skipped"
    assert stub_detector.calls == 1
    assert Detection.objects.get().attempts == 1


def test_a_job_for_a_deleted_detection_is_skipped(client, stub_detector, queued, django_capture_on_commit_callbacks):
    detection_id = upload(client, django_capture_on_commit_callbacks).json()["id"]
    Detection.objects.all().delete()
    assert tasks.analyse_detection.apply(args=[detection_id]).get() == "skipped"


def test_a_job_that_keeps_killing_its_worker_ends_failed(
    client, stub_detector, queued, django_capture_on_commit_callbacks, settings
):
    detection_id = upload(client, django_capture_on_commit_callbacks).json()["id"]
    # Each delivery whose worker died left the row "analysing" with one more attempt.
    Detection.objects.update(status=Status.ANALYSING, attempts=settings.DETECTOR_TASK_MAX_ATTEMPTS)
    assert tasks.analyse_detection.apply(args=[detection_id]).get() == "skipped"
    detection = Detection.objects.get()
    assert detection.status == Status.FAILED and "stopped 3 times" in detection.error_message
    assert stub_detector.calls == 0


def test_a_bad_image_fails_at_once_without_retries(client, stub_detector, queued, django_capture_on_commit_callbacks):
    detection_id = upload(client, django_capture_on_commit_callbacks).json()["id"]
    stub_detector.error = ValueError("no faces today")
    assert tasks.analyse_detection.apply(args=[detection_id]).get() == "failed"
    detection = Detection.objects.get()
    assert detection.status == Status.FAILED and "no faces today" in detection.error_message


class RetryAsked(Exception):
    pass


def test_a_transient_error_asks_for_a_retry_with_backoff_then_succeeds(
    client, stub_detector, queued, django_capture_on_commit_callbacks, monkeypatch
):
    detection_id = upload(client, django_capture_on_commit_callbacks).json()["id"]
    real_analyse, asked = tasks.analysis.analyse, []

    def locked(detection, decoded=None, data=None):
        raise OperationalError("database is locked")

    def retry(exc, countdown):
        asked.append((type(exc), countdown))
        return RetryAsked()

    monkeypatch.setattr(tasks.analysis, "analyse", locked)
    monkeypatch.setattr(tasks.analyse_detection, "retry", retry)
    with pytest.raises(RetryAsked):
        tasks.analyse_detection.apply(args=[detection_id])
    assert asked == [(OperationalError, 2)]
    assert Detection.objects.get().status == Status.ANALYSING

    monkeypatch.setattr(tasks.analysis, "analyse", real_analyse)
    assert tasks.analyse_detection.apply(args=[detection_id], retries=1).get() == "done"
    assert Detection.objects.get().attempts == 1  # a retry is not a new delivery


def test_a_storage_outage_that_outlasts_the_retries_ends_failed(
    client, stub_detector, queued, django_capture_on_commit_callbacks, monkeypatch
):
    detection_id = upload(client, django_capture_on_commit_callbacks).json()["id"]

    def unreadable(detection, decoded=None, data=None):
        raise OSError("shared storage is not mounted")

    monkeypatch.setattr(tasks.analysis, "analyse", unreadable)
    with pytest.raises(OSError):
        tasks.analyse_detection.apply(args=[detection_id], retries=tasks.analyse_detection.max_retries)
    detection = Detection.objects.get()
    assert detection.status == Status.FAILED and "unavailable" in detection.error_message


def test_the_sweep_queues_stuck_detections_again(client, stub_detector, queued, django_capture_on_commit_callbacks):
    detection_id = upload(client, django_capture_on_commit_callbacks).json()["id"]
    queued.clear()
    Detection.objects.update(created_at=timezone.now() - timedelta(hours=1), status=Status.ANALYSING)
    with django_capture_on_commit_callbacks(execute=True):
        counts = tasks.sweep.apply().get()
    assert counts["queued"] == 1 and queued == [detection_id]


def test_the_sweep_leaves_young_pending_detections_alone(
    client, stub_detector, queued, django_capture_on_commit_callbacks
):
    upload(client, django_capture_on_commit_callbacks)
    queued.clear()
    assert tasks.sweep.apply().get()["queued"] == 0 and queued == []


def test_each_worker_process_loads_the_model_at_start(monkeypatch):
    loaded = []
    monkeypatch.setattr(tasks, "load_service", lambda: loaded.append(True))
    tasks.load_model()
    assert loaded == [True]


def test_the_worker_settings_make_killed_jobs_come_back(settings):
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > settings.CELERY_TASK_TIME_LIMIT


def test_a_broker_that_is_down_leaves_the_upload_pending_not_a_500(
    client, stub_detector, settings, monkeypatch, media_root, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError as BrokerDown

    settings.CELERY_TASK_ALWAYS_EAGER = False

    def down(pk):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.analyse_detection, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("detector:upload"), {"image": upload_file()}, headers={"accept": "application/json"}
        )
    assert response.status_code == HTTPStatus.CREATED and response.json()["status"] == "pending"
    detection = Detection.objects.get()
    assert detection.status == Status.PENDING and (media_root / detection.image.name).is_file()
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(reverse("detector:upload"), {"image": upload_file()})
    assert page.status_code == HTTPStatus.FOUND and Detection.objects.count() == 2


def test_a_database_failure_after_the_upload_is_stored_leaves_it_pending(client, stub_detector, monkeypatch):
    from detector.services import analysis

    def locked(detection, new_attempt=True):
        raise OperationalError("database is locked")

    monkeypatch.setattr(analysis, "claim", locked)
    response = client.post(reverse("detector:upload"), {"image": upload_file()}, headers={"accept": "application/json"})
    assert response.status_code == HTTPStatus.CREATED and response.json()["status"] == "pending"
    assert Detection.objects.get().status == Status.PENDING and stub_detector.calls == 0
