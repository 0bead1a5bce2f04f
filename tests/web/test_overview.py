"""The overview: counts and server-side charts, own detections or (staff) everyone's."""

from http import HTTPStatus

import pytest
from django.urls import reverse

from tests.web.test_views import make_detections

pytestmark = pytest.mark.django_db
OVERVIEW = reverse("detector:overview")


def test_it_counts_only_own_detections(alice, user, other_user):
    make_detections(user, 2, label="Real", fake_probability=0.1, threshold=0.9)
    make_detections(user, 1, label="Deepfake", fake_probability=0.95, threshold=0.9)
    make_detections(other_user, 5, label="Deepfake", fake_probability=0.99, threshold=0.9)
    context = alice.get(OVERVIEW).context
    assert context["counts"]["Real"] == 2 and context["counts"]["Deepfake"] == 1 and context["total"] == 3


@pytest.mark.parametrize("chart", ["labels", "scores"])
def test_charts_are_svg_drawn_on_the_server(alice, user, chart):
    make_detections(user, 3, label="Real", fake_probability=0.2, threshold=0.9)
    response = alice.get(reverse("detector:overview_chart", args=[chart]))
    assert response.status_code == HTTPStatus.OK and response["Content-Type"] == "image/svg+xml"
    assert response.content.lstrip().startswith(b"<?xml") and b"<svg" in response.content


def test_charts_work_with_no_detections(alice):
    assert alice.get(reverse("detector:overview_chart", args=["labels"])).status_code == HTTPStatus.OK


def test_staff_can_see_everyones_and_others_cannot(client, alice, user, other_user, staff):
    make_detections(other_user, 4, label="Deepfake", fake_probability=0.99, threshold=0.9)
    assert alice.get(OVERVIEW + "?scope=all").status_code == HTTPStatus.NOT_FOUND
    assert alice.get(reverse("detector:overview_chart", args=["scores"]) + "?scope=all").status_code == 404
    client.force_login(staff)
    assert client.get(OVERVIEW + "?scope=all").context["total"] == 4


def test_unknown_chart_is_404(alice):
    assert alice.get("/overview/nope.svg").status_code == HTTPStatus.NOT_FOUND


def test_staff_without_the_reviewers_permission_see_only_their_own(client, django_user_model, other_user):
    """The admin refuses a staff account without permissions; the overview of everyone's checks does too."""
    from django.contrib.auth.models import Permission

    make_detections(other_user, 4, label="Deepfake", fake_probability=0.99, threshold=0.9)
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    client.force_login(clerk)
    assert client.get(OVERVIEW + "?scope=all").status_code == HTTPStatus.NOT_FOUND
    assert client.get(reverse("detector:overview_chart", args=["labels"]) + "?scope=all").status_code == 404
    assert "Show everyone's" not in client.get(OVERVIEW).content.decode()
    clerk.user_permissions.add(Permission.objects.get(codename="view_detection"))
    clerk = django_user_model.objects.get(pk=clerk.pk)  # permissions are cached on the instance
    client.force_login(clerk)
    assert client.get(OVERVIEW + "?scope=all").context["total"] == 4
