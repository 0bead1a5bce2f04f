"""Result, history, files and delete: each owner sees only their own detections."""

import datetime
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from detector.models import Detection
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db


def upload(client, name="photo.jpg"):
    client.post(reverse("detector:upload"), {"image": upload_file(name)})
    return Detection.objects.order_by("-created_at").first()


def test_the_upload_page_renders_an_accessible_form(client):
    page = client.get(reverse("detector:upload")).content.decode()
    assert 'name="image"' in page and '<label for="id_image">' in page
    assert "detector/upload.js" in page and "<script>" not in page


def test_the_result_page_shows_the_verdict_and_its_limits(alice, stub_detector):
    detection = upload(alice)
    page = alice.get(reverse("detector:result", args=[detection.pk])).content.decode()
    assert 'class="verdict verdict-deepfake"' in page and "Fake probability <strong>90 %</strong>" in page
    assert "How this is decided" in page and "at or above 50.0 %" in page and "stub-1" in page
    assert "where it is weak" in page
    assert 'class="facebox face-deepfake"' in page and "Face 1 · <strong>90 % fake</strong>" in page
    assert reverse("detector:preview", args=[detection.pk]) in page


def test_the_owner_gets_the_original_bytes_with_safe_headers(alice, stub_detector):
    detection = upload(alice)
    response = alice.get(reverse("detector:image", args=[detection.pk]))
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = b"".join(response.streaming_content)
    assert body == detection.image.open("rb").read()


def test_previews_are_reencoded_without_metadata(alice, stub_detector):
    import io

    from PIL import Image

    detection = upload(alice)
    response = alice.get(reverse("detector:thumbnail", args=[detection.pk]))
    im = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert im.format == "JPEG" and max(im.size) <= 256
    assert not im.getexif() and "icc_profile" not in im.info


@pytest.mark.parametrize("name", ["result", "image", "preview", "thumbnail", "delete"])
def test_it_returns_404_for_someone_elses_detection(client, user, other_user, stub_detector, name):
    client.force_login(user)
    detection = upload(client)
    client.force_login(other_user)
    assert client.get(reverse(f"detector:{name}", args=[detection.pk])).status_code == HTTPStatus.NOT_FOUND
    if name == "delete":
        assert client.post(reverse("detector:delete", args=[detection.pk])).status_code == HTTPStatus.NOT_FOUND
        assert Detection.objects.filter(pk=detection.pk).exists()


def test_anonymous_visitors_own_their_session_uploads(client, django_user_model, stub_detector):
    from django.test import Client

    detection = upload(client)
    assert detection.owner is None and detection.anonymous_owner
    assert client.get(reverse("detector:result", args=[detection.pk])).status_code == HTTPStatus.OK
    stranger = Client()
    assert stranger.get(reverse("detector:result", args=[detection.pk])).status_code == HTTPStatus.NOT_FOUND
    assert list(stranger.get(reverse("detector:history")).context["detections"]) == []


def test_history_lists_only_own_detections(client, user, other_user, stub_detector):
    client.force_login(other_user)
    upload(client, "bobs.jpg")
    client.force_login(user)
    upload(client, "alices.jpg")
    page = client.get(reverse("detector:history"))
    assert [d.original_name for d in page.context["detections"]] == ["alices.jpg"]


def make_detections(owner, count, **fields):
    return Detection.objects.bulk_create(
        [
            Detection(
                owner=owner,
                original_name=f"img{i}.jpg",
                sha256="0" * 64,
                image_format="JPEG",
                content_type="image/jpeg",
                size_bytes=1,
                width=1,
                height=1,
                status="done",
                **fields,
            )
            for i in range(count)
        ]
    )


def test_history_paginates_by_20(alice, user):
    make_detections(user, 25, label="Real")
    first = alice.get(reverse("detector:history"))
    second = alice.get(reverse("detector:history") + "?page=2")
    assert len(first.context["detections"]) == 20 and len(second.context["detections"]) == 5


def test_history_filters_by_label_date_and_name(alice, user):
    make_detections(user, 2, label="Real")
    fake = make_detections(user, 1, label="Deepfake")[0]
    fake.original_name = "suspicious-portrait.png"
    fake.save()
    old = make_detections(user, 1, label="Real")[0]
    Detection.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=30))
    history = reverse("detector:history")
    assert [d.pk for d in alice.get(history + "?label=Deepfake").context["detections"]] == [fake.pk]
    assert [d.pk for d in alice.get(history + "?q=portrait").context["detections"]] == [fake.pk]
    since = (timezone.now() - datetime.timedelta(days=1)).date().isoformat()
    assert len(alice.get(history + f"?start={since}").context["detections"]) == 3
    until = (timezone.now() - datetime.timedelta(days=10)).date().isoformat()
    assert [d.pk for d in alice.get(history + f"?end={until}").context["detections"]] == [old.pk]


def test_history_keeps_filters_across_pages(alice, user):
    make_detections(user, 25, label="Real")
    page = alice.get(reverse("detector:history") + "?label=Real").content.decode()
    assert "label=Real&amp;page=2" in page


def test_deleting_removes_the_row_and_its_files(alice, stub_detector, media_root, django_capture_on_commit_callbacks):
    detection = upload(alice)
    from detector.services.detections import stored_names

    paths = [media_root / name for name in stored_names(detection)[:3]]
    assert all(p.exists() for p in paths)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(reverse("detector:delete", args=[detection.pk]))
    assert response.status_code == HTTPStatus.FOUND
    assert not Detection.objects.exists()
    assert not any(p.exists() for p in paths)


def test_a_result_url_with_a_malformed_id_is_404(client):
    assert client.get("/detections/123/").status_code == HTTPStatus.NOT_FOUND


def test_the_about_page_states_training_data_thresholds_and_weaknesses(client, settings, tiny_bundle):
    settings.DETECTOR_MODEL = tiny_bundle
    page = client.get(reverse("detector:about_model")).content.decode()
    assert "tiny-1" in page and "research and non-commercial use only" in page
    assert "Where it is weak" in page


def test_the_about_page_says_when_the_model_learnt_from_self_blends_and_masks(client, settings, tmp_path, tiny_bundle):
    from detector.ml.inference.bundle import METADATA_FILE, read_metadata
    from tests.conftest import build_tiny_bundle

    settings.DETECTOR_MODEL = tiny_bundle
    plain = client.get(reverse("detector:about_model")).content.decode()
    assert "self-blended" not in plain and "<strong>where</strong>" not in plain
    bundle = build_tiny_bundle(tmp_path / "blended")
    meta = read_metadata(bundle)
    meta.training["self_blended_pseudo_fakes"] = 4321
    meta.training["frame_pairs"] = 1600
    meta.training["recipe"] = {"mask_weight": 1.0}
    (bundle / METADATA_FILE).write_text(meta.to_json())
    settings.DETECTOR_MODEL = bundle
    page = client.get(reverse("detector:about_model")).content.decode()
    assert "4,321 <strong>self-blended</strong> faces" in page
    assert "for 1,600\n  DFDC swaps the dataset also holds the real frame" in page


def test_the_about_page_shows_the_shipped_models_test_metrics(client):
    import json

    from detector.templatetags.detector_extras import percent
    from tests.conftest import SHIPPED_BUNDLE

    metrics = json.loads((SHIPPED_BUNDLE / "metrics-test.json").read_text())
    page = client.get(reverse("detector:about_model")).content.decode()
    assert "held-out test images" in page and "DFDC video frames" in page and ">dfdc<" not in page
    assert percent(metrics["overall"]["false_accusation_rate"]) in page  # shown with its decimal
    assert f"differ by {percent(metrics['calibration']['ece'])} on average" in page
    missed = percent(metrics["verdicts"]["by_source"]["dfdc"]["fakes"]["Real"])
    caught = percent(metrics["by_source"]["dfdc"]["detection_rate"])
    assert f'<td data-label="caught">{caught}</td><td data-label="missed">{missed}</td>' in page
    scaled = json.loads((SHIPPED_BUNDLE / "metrics-test-scaled90-jpeg75.json").read_text())["overall"]
    assert "scaled to 90 %, then re-encoded as JPEG at quality\n    75: " + percent(scaled["detection_rate"]) in page


def test_the_about_page_reads_test_metrics_written_before_the_verdict_shares(client, settings, tmp_path):
    import json

    from tests.conftest import SHIPPED_BUNDLE, build_tiny_bundle

    bundle = build_tiny_bundle(tmp_path / "older")
    metrics = json.loads((SHIPPED_BUNDLE / "metrics-test.json").read_text())
    del metrics["verdicts"], metrics["calibration"]
    (bundle / "metrics-test.json").write_text(json.dumps(metrics))
    settings.DETECTOR_MODEL = bundle
    page = client.get(reverse("detector:about_model")).content.decode()
    assert "held-out test images" in page and "differ by" not in page and "re-encoded" not in page


def test_the_about_page_gives_the_unseen_method_figures_its_bundle_measured(client, settings, tmp_path):
    import json

    from detector.services.inference import _bundle_facts
    from tests.conftest import build_tiny_bundle

    bundle = build_tiny_bundle(tmp_path / "measured")
    settings.DETECTOR_MODEL = bundle
    page = client.get(reverse("detector:about_model")).content.decode()
    assert "its blind spot. It misses" in page and "AUC of" not in page  # nothing measured, no figure

    def ffpp(model, auc):
        return {"model": model, "against_reals": {"ffpp_faceswap": {"n": 287, "auc": auc}}}

    (bundle / "metrics-ffpp-test.json").write_text(json.dumps(ffpp("tiny", 0.9371)))
    (bundle / "metrics-ffpp-test-without-ffpp_faceswap.json").write_text(json.dumps(ffpp("tiny-lomo", 0.7049)))
    _bundle_facts.cache_clear()
    page = client.get(reverse("detector:about_model")).content.decode()
    assert "trained the same way without FaceForensics++ FaceSwap" in page
    assert "AUC of 0.70, against\n    0.94 once it has seen them" in page


def test_percent_filter():
    from detector.templatetags.detector_extras import percent

    assert percent(0.0034) == "0.3 %" and percent(None) == "—" and percent(1) == "100.0 %"


def test_a_revoked_share_link_shows_the_sites_own_404_even_in_debug(alice, stub_detector, settings):
    from detector.services import reports

    alice.post(reverse("detector:upload"), {"image": upload_file()})
    detection = Detection.objects.get()
    alice.post(reverse("detector:share", args=[detection.pk]))
    detection.refresh_from_db()
    token = reports.share_token(detection)
    alice.post(reverse("detector:share_revoke", args=[detection.pk]))
    settings.DEBUG = True
    response = Client().get(reverse("detector:shared", args=[token]))
    assert response.status_code == 404 and "There is nothing here" in response.content.decode()
    assert "Django tried these URL patterns" not in response.content.decode()
