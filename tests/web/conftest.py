import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.conftest import build_tiny_bundle, image_bytes, installed, portrait_bytes


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("reviewer", password="pw-reviewer-123")


@pytest.fixture
def alice(client, user):
    client.force_login(user)
    return client


def upload_file(name="photo.jpg", data=None, content_type="image/jpeg"):
    return SimpleUploadedFile(name, image_bytes("JPEG") if data is None else data, content_type=content_type)


def portrait_file(name="portrait.jpg"):
    """A photo with a face, for the real serving code (a generated image has none, and gets No face)."""
    return SimpleUploadedFile(name, portrait_bytes(), content_type="image/jpeg")


@pytest.fixture
def token(user):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key


@pytest.fixture
def api(token):
    """A script's client: no session, alice's API token on every request."""
    from django.test import Client

    return Client(headers={"Authorization": f"Token {token}"})


def stored_files(media_root):
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


@pytest.fixture
def folders(tmp_path, settings):
    """Two tiny real bundles (one sees red as fake, the other blue) and a damaged one, nothing pinned."""
    folder = tmp_path / "models"
    red = build_tiny_bundle(folder / "sees-red", version="1.0.0", kernel=(0.05, 0.0, -0.05))
    blue = build_tiny_bundle(folder / "sees-blue", version="2.0.0", kernel=(-0.05, 0.0, 0.05))
    (red / "metrics-test.json").write_text(json.dumps({"overall": {"auc": 0.91, "detection_rate": 0.5}}))
    damaged = build_tiny_bundle(folder / "damaged", version="3.0.0")
    (damaged / "model.keras").write_bytes(b"not the weights it was")
    settings.DETECTOR_MODEL_DIRS = [folder]
    settings.DETECTOR_MODEL = red
    with installed(None):  # unpinned: the process serves the active version, as a server does
        yield red, blue, damaged


@pytest.fixture
def reviewer(staff):
    from django.test import Client

    client = Client()
    client.force_login(staff)
    return client


def upload(client):
    """Alice's upload of a portrait through the page; its detection."""
    from detector.models import Detection

    client.post(reverse("detector:upload"), {"image": portrait_file()})
    return Detection.objects.latest("created_at")
