"""Media on a local folder or an S3-compatible bucket (DETECTOR_MEDIA_STORAGE), chosen at start."""

import os
import subprocess
import sys
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from deepfake_site.storage_settings import LOCAL, S3, media_storage
from detector.models import Detection
from tests.conftest import ROOT, image_bytes
from tests.web.conftest import upload_file

BUCKET = "detector-media"
S3_ENV = {"DETECTOR_MEDIA_STORAGE": "s3", "DETECTOR_S3_BUCKET": BUCKET, "DETECTOR_S3_REGION": "us-east-1"}


def test_local_is_the_default():
    assert media_storage({}) == {"BACKEND": LOCAL}
    assert media_storage({"DETECTOR_MEDIA_STORAGE": "local"}) == {"BACKEND": LOCAL}


def test_s3_uses_the_bucket_endpoint_and_region_from_the_environment():
    storage = media_storage({**S3_ENV, "DETECTOR_S3_ENDPOINT_URL": "http://minio:9000", "DETECTOR_S3_REGION": "eu"})
    assert storage["BACKEND"] == S3 == "storages.backends.s3.S3Storage"
    options = storage["OPTIONS"]
    assert options["bucket_name"] == BUCKET
    assert (options["endpoint_url"], options["region_name"]) == ("http://minio:9000", "eu")
    assert options["addressing_style"] == "path"


def test_s3_objects_stay_private_and_are_never_overwritten():
    options = media_storage(S3_ENV)["OPTIONS"]
    assert options["default_acl"] is None and options["querystring_auth"] is True
    assert options["file_overwrite"] is False
    assert options["endpoint_url"] is None and "addressing_style" not in options  # AWS itself: boto3 decides


def test_s3_without_a_bucket_fails_loudly():
    with pytest.raises(ImproperlyConfigured, match="DETECTOR_S3_BUCKET"):
        media_storage({"DETECTOR_MEDIA_STORAGE": "s3"})


@pytest.mark.parametrize("value", ["S4", "nfs", "file"])
def test_an_unknown_storage_fails_loudly(value):
    with pytest.raises(ImproperlyConfigured, match="'local' or 's3'"):
        media_storage({"DETECTOR_MEDIA_STORAGE": value})


def run_settings(**env) -> subprocess.CompletedProcess:
    code = "from django.conf import settings; print(settings.STORAGES['default'])"
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "deepfake_site.settings", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True)


def test_the_settings_choose_the_bucket_from_the_environment():
    result = run_settings(**S3_ENV, DETECTOR_S3_ENDPOINT_URL="http://127.0.0.1:9000")
    assert result.returncode == 0, result.stderr
    assert S3 in result.stdout and BUCKET in result.stdout and "http://127.0.0.1:9000" in result.stdout


def test_the_process_does_not_start_with_an_unknown_storage():
    result = run_settings(DETECTOR_MEDIA_STORAGE="ftp")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DETECTOR_MEDIA_STORAGE" in result.stderr


@pytest.fixture
def bucket(settings, monkeypatch):
    """The default storage on an in-process S3 (moto); yields a boto3 client to look inside the bucket."""
    moto = pytest.importorskip("moto", reason="moto (requirements-dev.txt) mocks S3 in-process")
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        settings.STORAGES = {**settings.STORAGES, "default": media_storage(S3_ENV)}
        yield client


def keys(client) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def upload(client):
    client.post(reverse("detector:upload"), {"image": upload_file(data=image_bytes("JPEG", size=(400, 300)))})
    return Detection.objects.get()


@pytest.mark.django_db
def test_an_upload_is_kept_in_the_bucket_and_served_to_its_owner(alice, stub_detector, bucket, media_root):
    detection = upload(alice)
    assert detection.status == "done"
    assert keys(bucket) == sorted([detection.image.name, detection.preview.name, detection.thumbnail.name])
    assert not media_root.exists()

    response = alice.get(reverse("detector:image", args=[detection.pk]))
    assert response.status_code == HTTPStatus.OK
    stored = bucket.get_object(Bucket=BUCKET, Key=detection.image.name)["Body"].read()
    assert b"".join(response.streaming_content) == stored
    assert alice.get(reverse("detector:thumbnail", args=[detection.pk])).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_face_pictures_are_made_into_the_bucket(alice, tiny_detector, bucket):
    detection = upload(alice)
    response = alice.get(reverse("detector:face_image", args=[detection.pk, 1, "heatmap"]))
    assert response.status_code == HTTPStatus.OK and response["Content-Type"] == "image/png"
    assert f"faces/{detection.pk}-1-heatmap.png" in keys(bucket)


@pytest.mark.django_db
def test_deleting_removes_the_objects(alice, stub_detector, bucket, django_capture_on_commit_callbacks):
    detection = upload(alice)
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("detector:delete", args=[detection.pk]))
    assert keys(bucket) == []


@pytest.mark.django_db
def test_cleanup_removes_orphan_objects_and_keeps_the_rest(alice, stub_detector, bucket):
    from detector.services.cleanup import cleanup

    detection = upload(alice)
    bucket.put_object(Bucket=BUCKET, Key="uploads/orphan.jpg", Body=b"left by a crash")
    report = cleanup(grace=timedelta(0))
    assert report.orphan_files == ["uploads/orphan.jpg"] and report.rows_without_file == []
    assert keys(bucket) == sorted([detection.image.name, detection.preview.name, detection.thumbnail.name])


@pytest.mark.django_db
def test_readyz_checks_that_the_bucket_takes_writes(client, stub_detector, bucket):
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.OK and response.json()["checks"]["media"] is True
    assert keys(bucket) == []


class DiskFillsUp:
    """File content whose second chunk fails to be written, as a disk that fills up half-way does."""

    size = 2 * 64 * 1024

    def chunks(self, chunk_size=None):
        yield b"x" * 64 * 1024
        raise OSError(28, "No space left on device")


def test_a_write_that_fails_half_way_leaves_no_partial_file(media_root):
    from detector.storage import MediaStorage

    storage = MediaStorage(location=media_root)
    with pytest.raises(OSError, match="No space left"):
        storage.save("uploads/half.jpg", DiskFillsUp())
    assert [p for p in media_root.rglob("*") if p.is_file()] == []


@pytest.mark.django_db
def test_an_upload_whose_write_fails_half_way_stores_nothing(client, stub_detector, media_root, monkeypatch):
    from detector.storage import MediaStorage

    real = MediaStorage._save

    def fills_up(self, name, content):
        if name.startswith("previews/"):
            return real(self, name, DiskFillsUp())
        return real(self, name, content)

    monkeypatch.setattr(MediaStorage, "_save", fills_up)
    response = client.post(reverse("detector:upload"), {"image": upload_file()})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert not Detection.objects.exists() and [p for p in media_root.rglob("*") if p.is_file()] == []
