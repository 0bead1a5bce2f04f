"""Model versions: every bundle in the model folders, one active, switched in the admin without a restart."""

import pytest
from django.db import DatabaseError
from django.urls import reverse

from detector.ml.inference.bundle import BundleError
from detector.models import Detection, ModelActivation
from detector.services import activation, inference, registry
from tests.conftest import build_tiny_bundle, installed
from tests.web.conftest import upload

pytestmark = pytest.mark.django_db

VERSIONS = reverse("admin:detector_modelactivation_changelist")
ACTIVATE = reverse("admin:detector_modelactivation_activate")


def test_every_bundle_is_a_version_with_its_checks_and_metrics(folders):
    red, blue, damaged = folders
    found = {v.name: v for v in registry.versions()}
    assert set(found) == {"sees-red", "sees-blue", "damaged"}
    assert found["sees-red"].version == "1.0.0" and found["sees-red"].metrics["auc"] == 0.91
    assert found["sees-blue"].usable and found["sees-blue"].metrics is None
    assert not found["damaged"].usable and "checksum mismatch" in found["damaged"].error
    assert registry.active_path() == red  # nothing activated: DETECTOR_MODEL serves


def test_activating_a_version_changes_the_next_verdict_without_a_restart_and_rolling_back_works(folders, alice, staff):
    red, blue, _ = folders
    assert upload(alice).model_version == "1.0.0"
    loaded = inference.get_detector()
    activation.activate(blue, staff)
    assert upload(alice).model_version == "2.0.0"  # the same process, no restart
    assert inference.get_detector() is not loaded and inference.get_detector().path == blue
    activation.activate(red, staff)  # roll back: an earlier version activated again
    assert upload(alice).model_version == "1.0.0"
    assert [(a.name, a.version) for a in ModelActivation.objects.all()] == [
        ("sees-red", "1.0.0"),
        ("sees-blue", "2.0.0"),
    ]


def test_a_version_that_fails_its_checks_cannot_be_activated(folders, staff, tmp_path):
    _, _, damaged = folders
    with pytest.raises(BundleError, match="checksum mismatch"):
        activation.activate(damaged, staff)
    elsewhere = build_tiny_bundle(tmp_path / "elsewhere" / "stray", version="9.9.9")
    with pytest.raises(BundleError, match="not a bundle in the model folders"):
        activation.activate(elsewhere, staff)
    assert not ModelActivation.objects.exists()


def test_a_bundle_that_breaks_after_activation_leaves_the_one_serving_in_place(folders, alice, staff):
    red, blue, _ = folders
    assert upload(alice).model_version == "1.0.0"
    activation.activate(blue, staff)
    (blue / "model.tflite").unlink(missing_ok=True)
    (blue / "model.keras").write_bytes(b"broken after it was activated")
    assert upload(alice).model_version == "1.0.0"  # the bundle in place goes on serving; the failure is logged


def test_without_the_database_the_detector_in_place_goes_on(folders, alice, monkeypatch):
    red, _, _ = folders
    served = inference.get_detector()

    def down():
        raise DatabaseError("connection refused")

    monkeypatch.setattr(registry, "active_path", down)
    assert inference.get_detector() is served


def test_the_admin_lists_versions_activates_one_and_refuses_a_damaged_one(folders, reviewer, alice):
    red, blue, damaged = folders
    page = reviewer.get(VERSIONS).content.decode()
    assert "sees-red 1.0.0" in page and "sees-blue 2.0.0" in page and "<strong>Active</strong>" in page
    assert "0.910" in page and "Cannot serve:" in page and "checksum mismatch" in page
    response = reviewer.post(ACTIVATE, {"bundle": str(blue)}, follow=True)
    assert "Version sees-blue 2.0.0 now serves" in response.content.decode()
    assert upload(alice).model_version == "2.0.0"
    response = reviewer.post(ACTIVATE, {"bundle": str(damaged)}, follow=True)
    assert "Not activated:" in response.content.decode()
    assert ModelActivation.objects.count() == 1 and registry.active_path() == blue
    page = reviewer.get(VERSIONS).content.decode()
    assert "What served when" in page and "reviewer" in page  # who activated it


def test_staff_without_the_permission_cannot_activate(folders, client, django_user_model):
    _, blue, _ = folders
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_modelactivation"))
    client.force_login(clerk)
    page = client.get(VERSIONS).content.decode()
    assert "sees-blue 2.0.0" in page and "Activate</button>" not in page
    assert client.post(ACTIVATE, {"bundle": str(blue)}).status_code == 403
    assert not ModelActivation.objects.exists()


def test_reviewers_agreement_is_counted_per_version(folders, alice):
    from detector.models import Analysis, ReviewVerdict

    rows = [("Deepfake", ReviewVerdict.REAL), ("Real", ReviewVerdict.REAL), ("Uncertain", ReviewVerdict.FAKE)]
    for label, review in rows:
        pk = upload(alice).pk
        Detection.objects.filter(pk=pk).update(label=label, review_verdict=review)
        Analysis.objects.filter(detection=pk).update(label=label)
    upload(alice)  # not reviewed: not counted
    agreement = registry.review_agreement()["1.0.0"]
    assert agreement["reviewed"] == 3 and agreement["disagreed"] == 1 and agreement["agreed"] == 1
    assert agreement["undecided"] == 1 and agreement["disagreement_rate"] == 0.5


def test_the_command_lists_the_versions_and_activates_one(folders):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("model_versions", stdout=out)
    lines = out.getvalue().splitlines()
    assert "* sees-red 1.0.0  test AUC 0.910" in lines and "  sees-blue 2.0.0" in lines
    assert any(line.startswith("  damaged  cannot serve:") for line in lines)
    out = StringIO()
    call_command("model_versions", activate="sees-blue", stdout=out)
    assert out.getvalue().strip() == "activated sees-blue 2.0.0" and registry.active_path().name == "sees-blue"
    with pytest.raises(CommandError, match="not activated: .*checksum mismatch"):
        call_command("model_versions", activate="damaged")


def test_a_version_that_never_says_real_is_explained_so(tmp_path, settings, alice, client):
    """The generated-face model judges generated faces only: its pages say it never calls a face Real."""
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.traces import never_real

    bundle = build_tiny_bundle(tmp_path / "traces", version="t-1", crop_scale="native")
    never_real(bundle)
    settings.DETECTOR_MODEL = bundle
    with installed(Detector(bundle)):
        about = client.get(reverse("detector:about_model")).content.decode()
        assert "this model never says Real" in about and "it judges generated faces only" in about
        detection = upload(alice)
        page = alice.get(reverse("detector:result", args=[detection.pk])).content.decode()
        assert "never: this model judges generated faces only" in page


def test_the_overview_shows_how_often_reviewers_disagreed_with_each_version(folders, alice, staff):
    from django.test import Client

    from detector.models import Analysis, ReviewVerdict

    for label in ("Deepfake", "Real"):
        pk = upload(alice).pk
        Detection.objects.filter(pk=pk).update(label=label, review_verdict=ReviewVerdict.REAL)
        Analysis.objects.filter(detection=pk).update(label=label)
    reviewer = Client()
    reviewer.force_login(staff)
    page = reviewer.get(reverse("detector:overview") + "?scope=all").content.decode()
    assert "How reviewers found each model version" in page
    assert (
        '<tr><th scope="row">1.0.0</th><td data-label="reviewed">2</td><td data-label="agreed">1</td>' in page
        and "1 (50.0 %)" in page
    )
