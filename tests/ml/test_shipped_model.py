"""The bundle in ml_models/ loads, and scores the team's test images sensibly."""
import random

import numpy as np
import pytest

from detector.ml.bundle import read_metadata
from tests.conftest import SHARED_FACES, SHIPPED_BUNDLE, needs_shared


@pytest.fixture(scope="module")
def shipped():
    from detector.ml.predictor import Detector

    return Detector(SHIPPED_BUNDLE)


def test_the_shipped_bundle_is_intact_and_documented():
    meta = read_metadata(SHIPPED_BUNDLE)
    assert meta.labels["1"] == "Deepfake" and meta.labels["0"] == "Real"
    assert meta.thresholds.real_below <= meta.thresholds.decision == meta.thresholds.deepfake_from
    assert meta.training["train_images"] > 10_000
    assert (SHIPPED_BUNDLE / "MODEL_CARD.md").is_file()
    assert (SHIPPED_BUNDLE / "model.keras").stat().st_size < 50 * 1024 * 1024


def test_the_shipped_model_gives_a_verdict_on_a_portrait(shipped):
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    verdict = shipped.analyse(Image.fromarray(skimage_data.astronaut()))
    assert verdict.face_found and len(verdict.faces) == 1
    assert verdict.label in ("Real", "Deepfake", "Uncertain")
    assert 0.0 <= verdict.fake_probability <= 1.0


@needs_shared
def test_the_shipped_model_separates_real_and_fake_test_images(shipped):
    from sklearn.metrics import roc_auc_score

    from detector.ml.dataset import read_manifest
    from detector.ml.evaluation import score_samples

    samples = read_manifest(SHARED_FACES, "test")
    rng = random.Random(7)
    picked = rng.sample([s for s in samples if s.label == 1], 60) + rng.sample([s for s in samples if s.label == 0], 60)
    scores = score_samples(shipped, picked, progress=False)
    assert roc_auc_score(scores.labels, scores.probs) > 0.9
    reals = scores.labels == 0
    assert np.mean(scores.verdicts[reals] == "Deepfake") <= 0.15
    assert np.mean(scores.verdicts[~reals] == "Deepfake") >= 0.7
