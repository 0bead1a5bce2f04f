"""Loading a bundle: checksum, compatibility, label mapping."""

import json
import shutil

import pytest
from PIL import Image

from detector.ml.inference.bundle import BundleError, Thresholds, read_metadata
from tests.conftest import SHIPPED_BUNDLES, build_tiny_bundle


def copy_bundle(src, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(src, dst)
    return dst


def edit_metadata(path, **changes):
    meta = json.loads((path / "metadata.json").read_text())
    meta.update(changes)
    (path / "metadata.json").write_text(json.dumps(meta))


def test_a_real_keras_bundle_loads_and_predicts(tiny_bundle):
    from detector.ml.inference.predictor import Detector

    detector = Detector(tiny_bundle)
    verdict = detector.judge(Image.new("RGB", (64, 64), (200, 10, 10)))
    assert verdict.model_version == "tiny-1"
    assert 0 <= verdict.fake_probability <= 1


def test_high_output_means_deepfake_never_inverted(tiny_bundle):
    from detector.ml.inference.predictor import Detector

    detector = Detector(tiny_bundle)
    red = detector.judge(Image.new("RGB", (64, 64), (250, 0, 0)))  # logit +12.5
    blue = detector.judge(Image.new("RGB", (64, 64), (0, 0, 250)))  # logit -12.5
    assert red.fake_probability > 0.99 and blue.fake_probability < 0.01
    thresholds = detector.meta.thresholds
    assert thresholds.label(red.fake_probability) == "Deepfake" and thresholds.label(blue.fake_probability) == "Real"


def test_no_face_found_means_no_verdict(tiny_bundle):
    """A plain colour has no face: the centre square is scored (for measurement and reviewers) but not judged."""
    from detector.ml.inference.predictor import Detector

    verdict = Detector(tiny_bundle).judge(Image.new("RGB", (64, 64), (250, 0, 0)))
    assert not verdict.face_found and verdict.label == "No face" and verdict.confidence is None
    assert verdict.fake_probability > 0.99  # the centre square's score is kept
    assert [(f.box, f.label) for f in verdict.faces] == [(None, "No face")]


def test_damaged_weights_fail_the_checksum(tiny_bundle, tmp_path):
    path = copy_bundle(tiny_bundle, tmp_path)
    with open(path / "model.keras", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(BundleError, match="checksum mismatch"):
        read_metadata(path)


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        read_metadata(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bundle_format": 99}, "format 99"),
        ({"preprocessing_version": 99}, "preprocessing v99"),
        ({"labels": {"0": "Deepfake", "1": "Real"}}, "label mapping"),
    ],
)
def test_incompatible_bundles_are_refused(tiny_bundle, tmp_path, change, message):
    path = copy_bundle(tiny_bundle, tmp_path)
    edit_metadata(path, **change)
    with pytest.raises(BundleError, match=message):
        read_metadata(path)


def test_network_shape_must_match_the_metadata(tiny_bundle, tmp_path):
    from detector.ml.inference.bundle import load_keras_model

    path = copy_bundle(tiny_bundle, tmp_path)
    edit_metadata(path, input_size=64)
    with pytest.raises(BundleError, match="metadata expects"):
        load_keras_model(path, read_metadata(path))


def test_uncertain_band_sits_below_the_threshold():
    t = Thresholds.below(0.6, 1.0)
    assert t.real_below < 0.6 == t.deepfake_from == t.decision
    assert t.label(0.6) == "Deepfake"
    assert t.label(0.59) == "Uncertain"
    assert t.label(t.real_below - 1e-6) == "Real"


def test_nothing_more_likely_fake_than_real_is_called_real():
    t = Thresholds.below(0.97, 1.0)
    assert t.real_below == 0.5
    assert t.label(0.8) == "Uncertain" and t.label(0.49) == "Real"


def test_bundle_written_twice_gets_the_new_checksum(tmp_path):
    path = build_tiny_bundle(tmp_path / "b", version="a")
    first = read_metadata(path).weights_sha256
    build_tiny_bundle(tmp_path / "b", version="b")
    assert read_metadata(path).version == "b"
    assert len(first) == 64


def test_beta_calibration_with_equal_slopes_is_platt_scaling():
    from detector.ml.inference.bundle import Calibration

    platt, beta = Calibration(1.3, -0.4), Calibration(1.3, -0.4, upper_slope=1.3)
    for z in (-40.0, -3.0, -0.2, 0.0, 0.7, 5.0, 40.0):
        assert beta.probability(z) == pytest.approx(platt.probability(z), abs=1e-12)
    assert platt.method == "Platt scaling" and beta.method == "beta calibration"


def test_older_metadata_without_the_upper_slope_reads_as_platt_scaling(tiny_bundle):
    meta = json.loads((tiny_bundle / "metadata.json").read_text())
    meta["calibration"] = {"slope": 2.0, "intercept": 0.5}
    from detector.ml.inference.bundle import BundleMetadata

    calibration = BundleMetadata.from_dict(meta).calibration
    assert calibration.upper_slope is None and calibration.probability(-0.25) == pytest.approx(0.5)


def test_beta_calibration_recovers_the_map_that_made_the_labels_and_stays_monotone():
    import numpy as np

    from detector.ml.inference.bundle import Calibration
    from detector.ml.training.calibration import fit_calibration

    rng = np.random.default_rng(0)
    truth = Calibration(1.6, 0.25, upper_slope=0.55)  # steep for low scores, flat for high ones: Platt cannot fit it
    logits = rng.normal(0.0, 3.0, 40_000)
    labels = (rng.random(logits.size) < [truth.probability(z) for z in logits]).astype(int)
    fitted = fit_calibration(logits, labels)
    assert fitted.upper_slope is not None
    assert (fitted.slope, fitted.upper_slope, fitted.intercept) == pytest.approx((1.6, 0.55, 0.25), abs=0.1)
    grid = [fitted.probability(z) for z in np.linspace(-30, 30, 301)]
    assert all(a < b for a, b in zip(grid, grid[1:], strict=False))


def test_calibration_falls_back_to_platt_where_beta_would_not_be_monotone():
    import numpy as np

    from detector.ml.training.calibration import fit_calibration

    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, 4_000)
    # fakes only among the lowest and the highest scores: a beta fit would turn down at one end
    labels = ((logits < -4) | (logits > 2)).astype(int)
    fitted = fit_calibration(logits, labels)
    assert fitted.upper_slope is None and fitted.method == "Platt scaling"


@pytest.mark.parametrize("bundle", SHIPPED_BUNDLES, ids=[b.name for b in SHIPPED_BUNDLES])
def test_a_shipped_bundle_names_no_module_path_so_the_code_may_move(bundle):
    """Its metadata names no Python module, and its Keras file only Keras's own layers: moving the code (as
    detector/ml/ was split in three) cannot stop it loading."""
    import zipfile

    from detector.ml.inference.bundle import read_metadata

    read_metadata(bundle)
    assert "detector." not in (bundle / "metadata.json").read_text()
    keras_file = bundle / "model.keras"
    if keras_file.exists():
        config = json.loads(zipfile.ZipFile(keras_file).read("config.json"))
        modules = set()

        def walk(node):
            if isinstance(node, dict):
                if isinstance(node.get("module"), str):
                    modules.add(node["module"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(config)
        assert modules and all(m.startswith("keras") for m in modules), modules
