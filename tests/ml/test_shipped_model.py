"""The bundle in ml_models/ loads, and scores the team's test images sensibly."""

import random

import numpy as np
import pytest

from detector.ml.inference.bundle import member_path, read_metadata
from tests.conftest import FOLD_BUNDLES, ROOT, SHARED_FACES, SHIPPED_BUNDLE, SHIPPED_BUNDLES, needs_shared

MB = 1024 * 1024


def test_the_default_is_shipped_and_the_models_folder_keeps_within_its_limits():
    assert SHIPPED_BUNDLE in SHIPPED_BUNDLES and len(SHIPPED_BUNDLES) >= 2
    sizes = {b.name: sum(f.stat().st_size for f in b.rglob("*") if f.is_file()) for b in SHIPPED_BUNDLES}
    sizes |= {f"folds/{b.name}": sum(f.stat().st_size for f in b.rglob("*") if f.is_file()) for b in FOLD_BUNDLES}
    assert all(size < 50 * MB for size in sizes.values()), sizes
    everything = sum(f.stat().st_size for f in (ROOT / "ml_models").rglob("*") if f.is_file())
    assert everything < 200 * MB, sizes


def test_a_fold_network_is_no_model_version_and_no_member():
    from detector.ml.inference.bundle import read_metadata as meta_of

    assert FOLD_BUNDLES, "the DFDC fold's network is shipped for the folds"
    served = {p.resolve() for p in SHIPPED_BUNDLES}
    members = {m["bundle"] for b in SHIPPED_BUNDLES for m in meta_of(b).members}
    assert not served & {b.resolve() for b in FOLD_BUNDLES} and not members & {b.name for b in FOLD_BUNDLES}


@pytest.mark.parametrize("bundle", SHIPPED_BUNDLES + FOLD_BUNDLES, ids=lambda b: b.name)
def test_every_shipped_bundle_is_intact_and_documented(bundle):
    meta = read_metadata(bundle)
    assert meta.labels["1"] == "Deepfake" and meta.labels["0"] == "Real"
    assert meta.thresholds.real_below <= meta.thresholds.decision == meta.thresholds.deepfake_from
    assert (bundle / "MODEL_CARD.md").is_file()
    if not meta.is_ensemble:
        assert meta.training["train_images"] > 8_000


def test_the_default_serves_with_litert_without_tensorflow():
    """The default and each of its members carry the LiteRT form (a bundle may ship its Keras weights alone)."""
    meta = read_metadata(SHIPPED_BUNDLE)
    networks = [member_path(SHIPPED_BUNDLE, m) for m in meta.members] or [SHIPPED_BUNDLE]
    assert all("litert" in read_metadata(b).engines for b in networks)


@pytest.mark.parametrize("bundle", SHIPPED_BUNDLES + FOLD_BUNDLES, ids=lambda b: b.name)
def test_every_model_card_is_up_to_date_with_its_bundles_metadata_and_measurements(bundle):
    from detector.ml.measurement.model_card import render

    card = (bundle / "MODEL_CARD.md").read_text()
    folder = bundle.relative_to(ROOT)
    assert card == render(bundle), f"run: python -m detector.ml.measurement.model_card {folder}"
    if (bundle / "metrics-test.json").is_file():
        assert "## Calibration on the test split" in card


def test_the_shipped_model_gives_a_verdict_on_a_portrait(shipped_detector):
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    verdict = shipped_detector.judge(Image.fromarray(skimage_data.astronaut()))
    assert verdict.face_found and len(verdict.faces) == 1
    assert verdict.label in ("Real", "Deepfake", "Uncertain")
    assert 0.0 <= verdict.fake_probability <= 1.0


@needs_shared
def test_the_shipped_model_scores_team_test_images_as_measured(shipped_detector):
    """A sample of the test split: GAN faces caught, reals rarely accused, DFDC swaps ranked above chance.

    The bounds sit well inside what evaluate_detector measured on the whole split
    (see the model card), so they catch a broken bundle, not noise.
    """
    from sklearn.metrics import roc_auc_score

    from detector.ml.measurement.dataset import read_manifest
    from detector.ml.measurement.evaluation import score_samples

    by_source = {}
    for s in read_manifest(SHARED_FACES, "test"):
        by_source.setdefault((s.source, s.label), []).append(s)
    rng = random.Random(7)
    pick = lambda key, n: rng.sample(by_source[key], n)  # noqa: E731
    reals = pick(("celeba", 0), 30) + pick(("dfdc", 0), 30)
    gan, dfdc_fakes = pick(("gan256", 1), 30), pick(("dfdc", 1), 30)
    scores = score_samples(shipped_detector, reals + gan + dfdc_fakes, progress=False)
    verdicts, probs = scores.verdicts, scores.probs
    assert np.mean(verdicts[:60] == "Deepfake") <= 0.05
    assert np.mean(verdicts[60:90] == "Deepfake") >= 0.9
    dfdc = np.r_[30:60, 90:120]
    assert roc_auc_score(scores.labels[dfdc], probs[dfdc]) > 0.75
