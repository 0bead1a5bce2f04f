"""The shipped model, through the real upload form, to a stored verdict."""

import io
from http import HTTPStatus

import pytest
from django.urls import reverse
from PIL import Image

from detector.models import Detection
from tests.conftest import SHIPPED_BUNDLE
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db


def test_a_portrait_upload_gets_a_real_verdict_from_the_shipped_model(client, shipped):
    skimage_data = pytest.importorskip("skimage.data")
    buf = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buf, "JPEG", quality=90)
    response = client.post(reverse("detector:upload"), {"image": upload_file("astronaut.jpg", buf.getvalue())})
    assert response.status_code == HTTPStatus.FOUND
    detection = Detection.objects.get()
    assert detection.status == "done"
    assert detection.model_version == shipped.version
    assert detection.label in ("Real", "Deepfake", "Uncertain")
    assert detection.face_found and len(detection.faces) == 1
    assert detection.threshold == shipped.meta.thresholds.decision
    page = client.get(response.url).content.decode()
    assert detection.label in page and shipped.version in page
    # What the model knows comes from its bundle: its training count and sources, both thresholds and their rules.
    from detector.ml.measurement.sources import training_summary

    trained = training_summary(shipped.meta, shipped.path)  # an ensemble's: its members'
    assert f"on {trained['images']:,} face images" in page and "FaceForensics++ FaceSwap face swaps" in page
    assert "How this is decided" in page and "at most 10 % of those it was measured on" in page
    real_below = shipped.meta.thresholds.real_below
    assert f"below {real_below * 100:.1f} %: set so that few fakes fall under it" in page
    # Where the score stands among validation images of known truth (the bundle keeps their quantiles).
    if detection.label == "Real":
        assert "scored lower than" in page and "of 100 fake faces held out of training" in page
    elif detection.label == "Deepfake":
        assert "scored higher than" in page and "of 100 real faces held out of training" in page


def test_the_service_loads_the_configured_bundle_once(settings, monkeypatch):
    from detector.services import inference

    monkeypatch.setattr(inference, "_detector", None)
    settings.DETECTOR_MODEL = SHIPPED_BUNDLE
    first = inference.load_service(warm_up=False)
    assert first is not None and inference.load_service() is first
    assert inference.get_detector() is first
