"""An ensemble as the served model: its members' scores side by side on the result page and in the API."""

import pytest
from django.urls import reverse

from detector.models import Detection
from tests.ml.test_ensemble import write_val
from tests.web.conftest import portrait_file

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def ensemble_bundle(tmp_path_factory):
    from detector.ml.inference.bundle import METADATA_FILE, read_metadata
    from detector.ml.training.ensemble import fit_ensemble
    from tests.conftest import build_tiny_bundle

    root = tmp_path_factory.mktemp("ensemble")
    folder = root / "ml_models"
    red = build_tiny_bundle(folder / "sees-red", version="r-1", kernel=(0.05, 0.0, -0.02))
    # The green one cuts faces as the trace model does (native resolution, no resizing), the red one resized.
    green = build_tiny_bundle(folder / "sees-green", 16, "g-1", (0.0, 0.05, -0.02), crop_scale="native")
    for bundle, title, source in ((red, "Red detector", "dfdc"), (green, "Green detector", "ffpp_faceswap")):
        meta = read_metadata(bundle)
        meta.training.update(title=title, train_images=50, train_by_source={f"{source}/fake": 20, "celeba/real": 30})
        (bundle / METADATA_FILE).write_text(meta.to_json())
    out = folder / "both"
    assert fit_ensemble([red, green], out, "e-1", [write_val(root / "data")], progress=False)["beats_best_member"]
    return out


@pytest.fixture
def ensemble(ensemble_bundle, settings):
    from detector.ml.inference.predictor import Detector
    from tests.conftest import installed

    settings.DETECTOR_MODEL = ensemble_bundle
    with installed(Detector(ensemble_bundle)):
        yield


def test_the_result_page_shows_each_models_score_and_label_beside_the_ensembles(alice, ensemble, ensemble_bundle):
    from detector.ml.inference.bundle import read_metadata

    alice.post(reverse("detector:upload"), {"image": portrait_file()})
    detection = Detection.objects.get()
    assert detection.model_version == "e-1"
    models = detection.faces[0]["models"]
    assert [(m["name"], m["version"]) for m in models] == [("sees-red", "r-1"), ("sees-green", "g-1"), ("both", "e-1")]
    assert models[-1]["ensemble"] and models[-1]["fake_probability"] == detection.fake_probability
    # Each member is labelled by its own thresholds, not the ensemble's.
    for m in models[:2]:
        assert m["label"] == read_metadata(ensemble_bundle.parent / m["name"]).thresholds.label(m["fake_probability"])
    assert [m["name"] for m in detection.model_scores] == ["sees-red", "sees-green", "both"]
    assert all(m["face"] == 1 for m in detection.model_scores)
    page = alice.get(reverse("detector:result", args=[detection.pk])).content.decode()
    assert 'aria-label="Each model\'s score for face 1"' in page
    assert "Red detector r-1</span>" in page and "Green detector g-1</span>" in page and "Ensemble e-1</span>" in page
    assert "Every model's view" in page and "Version e-1 (both): the verdict shown" in page
    assert "It combines 2 models trained" in page and "FaceForensics++ FaceSwap face swaps" in page
    assert "about 18,000" not in page


def test_the_api_gives_each_models_score_and_label_per_face_and_per_image(api, ensemble):
    response = api.post(reverse("api:detections"), {"image": portrait_file()})
    pk = response.json()["results"][0]["detection"]["id"]
    body = api.get(reverse("api:detection", args=[pk])).json()
    face = body["faces"][0]
    assert [m["name"] for m in face["models"]] == ["sees-red", "sees-green", "both"]
    assert {"name", "version", "title", "fake_probability", "label", "ensemble"} <= set(face["models"][0])
    assert [m["ensemble"] for m in face["models"]] == [False, False, True]
    assert [(m["name"], m["face"]) for m in body["models"]] == [("sees-red", 1), ("sees-green", 1), ("both", 1)]
    assert body["models"][-1]["fake_probability"] == body["fake_probability"]
    [analysis] = body["analyses"]
    assert analysis["version"] == "e-1" and analysis["current"] and len(analysis["models"]) == 3


def test_the_about_page_lists_the_models_it_combines_and_what_each_learnt_from(client, ensemble):
    page = client.get(reverse("detector:about_model")).content.decode()
    assert "<h2>The models it combines</h2>" in page
    assert "<strong>Red detector</strong> (sees-red r-1, weight" in page and "(sees-green g-1" in page
    assert "DFDC videos (real frames, and face swaps made from them): 20" in page
    assert "CelebA celebrity portraits: 30" in page
    assert "2 models, each judging the face its own way" in page
    assert (
        "(sees-red r-1, weight" in page
        and "EfficientNet-Lite0, pretrained on ImageNet and fine-tuned to judge a 32×32" in page
    )
    assert "A small network trained from scratch on the pixel-level noise" in page and "centre 16×16 pixels" in page


def test_the_about_page_says_which_of_the_defaults_members_also_judge_the_mirror_image(client, shipped):
    """The default has its Lite2 member judge each face once (its mirror earned nothing on val), the others twice."""
    import re

    page = client.get(reverse("detector:about_model")).content.decode()
    lite2 = re.search(r"\(faces-effnetlite2-v1 2\.11\.0, weight.*?</li>", page, re.S).group(0)
    lite0 = re.search(r"\(faces-effnetlite0-v2 2\.4\.0, weight.*?</li>", page, re.S).group(0)
    assert "judges each face\n    once, without its mirror image" in lite2
    assert "judges each face\n    and its mirror image" in lite0
