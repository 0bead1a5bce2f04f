import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import image_bytes, portrait_bytes


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
