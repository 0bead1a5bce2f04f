"""Accounts: sign up, log in and out, password change and reset, anonymous hand-over, lockout."""

from http import HTTPStatus

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from detector.models import Detection
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db


def test_signing_up_logs_in_and_takes_over_anonymous_checks(client, stub_detector, django_user_model):
    client.post(reverse("detector:upload"), {"image": upload_file("before.jpg")})
    response = client.post(
        reverse("signup"), {"username": "carol", "password1": "a-Strong-pass-123", "password2": "a-Strong-pass-123"}
    )
    assert response.status_code == HTTPStatus.FOUND
    carol = django_user_model.objects.get(username="carol")
    detection = Detection.objects.get()
    assert detection.owner == carol and detection.anonymous_owner == ""
    assert [d.original_name for d in client.get(reverse("detector:history")).context["detections"]] == ["before.jpg"]


def test_logging_in_takes_over_this_sessions_checks_only(client, stub_detector, user):
    other_visitor = Client()
    other_visitor.post(reverse("detector:upload"), {"image": upload_file("theirs.jpg")})
    client.post(reverse("detector:upload"), {"image": upload_file("mine.jpg")})
    client.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert Detection.objects.get(original_name="mine.jpg").owner == user
    assert Detection.objects.get(original_name="theirs.jpg").owner is None


def test_logout_ends_access_to_the_accounts_checks(alice, stub_detector):
    alice.post(reverse("detector:upload"), {"image": upload_file()})
    detection = Detection.objects.get()
    alice.post(reverse("logout"))
    assert alice.get(detection.get_absolute_url()).status_code == HTTPStatus.NOT_FOUND


def test_password_change(alice, user):
    response = alice.post(
        reverse("password_change"),
        {"old_password": "pw-alice-123", "new_password1": "An0ther-secret!", "new_password2": "An0ther-secret!"},
    )
    assert response.status_code == HTTPStatus.FOUND
    user.refresh_from_db()
    assert user.check_password("An0ther-secret!")


def test_password_reset_sends_a_link(client, user):
    user.email = "alice@example.org"
    user.save()
    client.post(reverse("password_reset"), {"email": "alice@example.org"})
    assert len(mail.outbox) == 1 and "/accounts/reset/" in mail.outbox[0].body


def test_login_is_locked_after_repeated_failures(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_account_pages_render(client):
    for name in ("login", "signup", "password_reset"):
        assert client.get(reverse(name)).status_code == HTTPStatus.OK


def signup(client, name):
    data = {"username": name, "password1": "a-Strong-pass-123", "password2": "a-Strong-pass-123"}
    return client.post(reverse("signup"), data)


def test_sign_ups_from_one_address_are_limited(settings, django_user_model):
    settings.DETECTOR_SIGNUP_RATE = "2/h"
    for n in range(2):
        assert signup(Client(), f"user{n}").status_code == HTTPStatus.FOUND
    response = signup(Client(), "user2")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS and int(response["Retry-After"]) > 0
    assert "Too many accounts were made from this address" in response.content.decode()
    assert django_user_model.objects.count() == 2


def test_a_mistyped_sign_up_uses_up_nothing(client, settings, django_user_model):
    settings.DETECTOR_SIGNUP_RATE = "1/h"
    bad = {"username": "dave", "password1": "a-Strong-pass-123", "password2": "typo"}
    for _ in range(3):
        assert client.post(reverse("signup"), bad).status_code == HTTPStatus.OK
    assert signup(client, "dave").status_code == HTTPStatus.FOUND


def test_password_resets_are_limited_per_address_and_per_client(user, settings):
    user.email = "alice@example.org"
    user.save()
    settings.DETECTOR_PASSWORD_RESET_RATE = "2/h"
    settings.DETECTOR_PASSWORD_RESET_CLIENT_RATE = "3/h"
    for _ in range(2):
        assert Client().post(reverse("password_reset"), {"email": "Alice@example.org"}).status_code == HTTPStatus.FOUND
    refused = Client().post(reverse("password_reset"), {"email": "alice@example.org"})
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS and "Too many reset requests" in refused.content.decode()
    assert len(mail.outbox) == 2  # no third link in alice's inbox
    # the same client, other addresses: the per-client limit (3 tries, the refused one included) holds too
    assert (
        Client().post(reverse("password_reset"), {"email": "x@example.org"}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    )


def test_sign_up_asks_for_an_optional_email(client, django_user_model):
    data = {"username": "erin", "password1": "a-Strong-pass-123", "password2": "a-Strong-pass-123"}
    assert client.post(reverse("signup"), {**data, "email": "erin@example.org"}).status_code == HTTPStatus.FOUND
    assert django_user_model.objects.get(username="erin").email == "erin@example.org"
    assert Client().post(reverse("signup"), {**data, "username": "frank"}).status_code == HTTPStatus.FOUND


def test_the_reset_is_offered_only_where_the_server_sends_mail(client, alice, user, settings):
    assert "Forgot your password?" in client.get(reverse("login")).content.decode()
    settings.DETECTOR_SENDS_MAIL = False
    assert "Forgot your password?" not in client.get(reverse("login")).content.decode()
    response = client.get(reverse("password_reset"))
    assert response.status_code == HTTPStatus.NOT_FOUND and "sends no e-mail" in response.content.decode()
    assert "This server sends no e-mail" in alice.get(reverse("account")).content.decode()


def test_the_account_page_keeps_an_email_for_resets(alice, user):
    alice.post(reverse("account"), {"email": "alice@example.org"})
    user.refresh_from_db()
    assert user.email == "alice@example.org"
    assert "a link can be sent</a> to alice@example.org" in alice.get(reverse("account")).content.decode()
