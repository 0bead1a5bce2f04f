"""Scoring a face on its crop and its mirror image (``test_time_flip`` in the bundle)."""

import json
import shutil

import numpy as np
import pytest

SIZE = 32


def left_half_bundle(path, *, flip: bool):
    """A real saved bundle whose fake logit is 0.05 x the mean red of the crop's left half (the right half unseen).

    The feature map keeps the crop's geometry (the right half zeroed), so its heatmaps can be checked by position.
    """
    import keras

    from detector.ml.inference.bundle import BundleMetadata, Calibration, Thresholds, write_bundle

    inputs = keras.Input((SIZE, SIZE, 3), name="pixels")
    red = keras.layers.Conv2D(1, 1, use_bias=False, name="red")(inputs)
    left = keras.layers.Cropping2D(((0, 0), (0, SIZE // 2)))(red)
    fmap = keras.layers.ZeroPadding2D(((0, 0), (0, SIZE // 2)))(left)
    logit = keras.layers.Dense(1, name="fake_logit")(keras.layers.GlobalAveragePooling2D(name="pool")(fmap))
    model = keras.Model(inputs, logit)
    model.get_layer("red").set_weights([np.array([[[[1.0], [0.0], [0.0]]]], np.float32)])
    model.get_layer("fake_logit").set_weights([np.full((1, 1), 0.1, np.float32), np.zeros(1, np.float32)])
    meta = BundleMetadata(
        name=path.name,
        version="left-1",
        input_size=SIZE,
        face_margin=0.2,
        calibration=Calibration(1.0, 0.0),
        thresholds=Thresholds.below(0.5, 0.4),
        test_time_flip=flip,
    )
    write_bundle(path, model, meta)
    return path


def red_left_crop():
    crop = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    crop[:, :, : SIZE // 2, 0] = 200  # red on the left, black on the right
    return crop


def test_the_logit_is_the_mean_over_the_crop_and_its_mirror_image(tmp_path):
    from detector.ml.inference.predictor import Detector

    crop = red_left_crop()
    plain = Detector(left_half_bundle(tmp_path / "plain", flip=False))
    flipped = Detector(left_half_bundle(tmp_path / "flip", flip=True))
    seen = plain.face_logits(crop)[0]
    assert seen == pytest.approx(0.05 * 200)  # the left half, red
    assert plain.face_logits(crop[:, :, ::-1])[0] == pytest.approx(0.0)  # mirrored: the red half is unseen
    assert flipped.face_logits(crop)[0] == pytest.approx(seen / 2)
    two = np.concatenate([crop, crop[:, :, ::-1]])  # several faces in one call, each its own mean
    np.testing.assert_allclose(flipped.face_logits(two), [seen / 2, seen / 2], rtol=1e-5)


def test_the_mirror_images_evidence_is_drawn_where_it_lies_in_the_shown_crop(tmp_path):
    from detector.ml.inference.predictor import Detector
    from detector.ml.inference.preprocessing import FaceCrop, PreparedImage

    uniform = np.full((SIZE, SIZE, 3), (200, 0, 0), np.uint8)
    prepared = PreparedImage(SIZE, SIZE, [FaceCrop(None, uniform)])
    plain = Detector(left_half_bundle(tmp_path / "plain", flip=False)).heatmaps(prepared)[0]
    both = Detector(left_half_bundle(tmp_path / "flip", flip=True)).heatmaps(prepared)[0]
    half = SIZE // 2
    assert plain[:, : half - 1].min() > 0.9 and plain[:, half + 1 :].max() < 0.1  # only what it saw
    assert both[:, : half - 1].min() > 0.9 and both[:, half + 1 :].min() > 0.9  # the mirror saw the right half


def test_calibration_can_switch_on_the_mirror_under_a_new_version(tmp_path):
    from detector.ml.inference.bundle import read_metadata
    from detector.ml.measurement.dataset import read_manifest
    from detector.ml.training.calibration import calibrate_bundle
    from tests.ml.test_commands import write_val_set

    bundle = left_half_bundle(tmp_path / "bundle", flip=False)
    weights = read_metadata(bundle).weights_sha256
    root = write_val_set(tmp_path / "data", 8)
    meta = calibrate_bundle(bundle, read_manifest(root, "val"), max_far=0.0, test_time_flip=True, version="left-2")
    stored = read_metadata(bundle)
    assert stored.test_time_flip and stored.version == "left-2"
    assert stored.training["same_weights_as"] == "left-1"
    assert stored.weights_sha256 == weights  # the same weights, scored another way
    assert meta.training["calibration"]["face_logit"] == "mean over the crop and its mirror image"
    assert stored.calibration == meta.calibration and meta.calibration.slope > 0
    calibrate_bundle(
        bundle, read_manifest(root, "val"), max_far=0.0, version="left-3"
    )  # a second refit of the same weights
    assert read_metadata(bundle).training["same_weights_as"] == "left-1"  # still names the version that trained them


def test_a_bundle_without_the_setting_scores_the_crop_alone(tiny_bundle, tmp_path):
    from detector.ml.inference.bundle import METADATA_FILE, read_metadata

    bundle = tmp_path / "older"
    shutil.copytree(tiny_bundle, bundle)
    path = bundle / METADATA_FILE
    data = json.loads(path.read_text())
    del data["test_time_flip"]  # written before the setting existed
    path.write_text(json.dumps(data))
    assert read_metadata(bundle).test_time_flip is False


def test_the_mirror_pays_only_where_its_paired_gain_interval_lies_above_zero():
    from detector.ml.measurement.mirror import paired_gain

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 1000)
    crop = labels + rng.normal(0, 1.5, labels.size)
    informative = labels + rng.normal(0, 1.5, labels.size)  # a second, independent look at each face
    pays = paired_gain(labels, crop, (crop + informative) / 2)
    assert pays["auc_with_mirror"] > pays["auc_one_view"] and pays["gain_interval"][0] > 0 and pays["mirror_pays"]
    noise = paired_gain(labels, crop, crop + rng.normal(0, 0.05, labels.size))  # the same look, jittered
    lo, hi = noise["gain_interval"]
    assert lo <= 0 <= hi and not noise["mirror_pays"]
    one_class = paired_gain(np.ones(5, int), np.arange(5.0), np.arange(5.0))
    assert one_class["gain"] is None and not one_class["mirror_pays"]


def write_right_half_tinted(root):
    """Val images: the reals a portrait a little lighter or darker, the fakes the same with the right half red."""
    from tests.ml.test_clip import write_portraits

    def right_half_red(pixels):
        pixels[:, pixels.shape[1] // 2 :, 0] += 120

    return write_portraits(root, (("val", 8),), tint=right_half_red, brightness=(0.95, 1.05), source="right-half")


def test_measured_on_images_the_mirror_pays_for_a_network_that_sees_half_a_face_not_for_one_blind_to_sides(
    tmp_path, tiny_bundle
):
    """The left-half network sees a right-half tint only in the mirror image; the tiny network averages the
    whole crop, so its mirror is the same look again: one keeps the mirror, the other drops it."""
    from detector.ml.inference.predictor import Detector
    from detector.ml.measurement import mirror

    samples = mirror._samples([write_right_half_tinted(tmp_path / "data")], "val")
    half = mirror.measure(Detector(left_half_bundle(tmp_path / "left", flip=True)), samples, progress=False)["left"]
    assert (half["n"], half["fakes"]) == (16, 8)
    assert half["auc_with_mirror"] == 1.0 and half["auc_one_view"] < 0.8 and half["mirror_pays"]
    assert half["by_source"]["right-half"]["mirror_pays"]
    blind = mirror.measure(Detector(tiny_bundle), samples, progress=False)["tiny"]
    assert blind["gain"] == pytest.approx(0.0, abs=1e-6) and not blind["mirror_pays"]


def test_an_ensemble_is_measured_member_by_member_and_with_the_mirror_only_where_it_paid(tmp_path):
    from detector.ml.inference.bundle import BundleMetadata, Calibration, Thresholds
    from detector.ml.inference.predictor import Detector
    from detector.ml.measurement import mirror
    from tests.conftest import build_tiny_bundle

    folder = tmp_path / "ml_models"
    left_half_bundle(folder / "left", flip=True)
    build_tiny_bundle(folder / "tiny", version="tiny-1")
    members = [
        {"bundle": b, "version": v, "title": "", "weight": 0.5} for b, v in (("left", "left-1"), ("tiny", "tiny-1"))
    ]
    meta = BundleMetadata(
        name="both",
        version="e-1",
        input_size=SIZE,
        face_margin=0.2,
        calibration=Calibration(1.0, 0.0),
        thresholds=Thresholds.below(0.5, 0.4),
        members=members,
        stacking={"rule": "mean", "intercept": 0.0},
        test_time_flip=True,
    )
    (folder / "both").mkdir()
    (folder / "both" / "metadata.json").write_text(meta.to_json())
    samples = mirror._samples([write_right_half_tinted(tmp_path / "data")], "val")
    measured = mirror.measure(Detector(folder / "both"), samples, progress=False)
    assert set(measured) == {"left", "tiny", "both"}
    assert measured["left"]["mirror_pays"] and not measured["tiny"]["mirror_pays"]
    chosen = measured["both"]["mirror_where_it_pays"]
    assert (chosen["members_with_mirror"], chosen["networks_run_per_face"]) == (["left"], 3)
    assert chosen["auc_all_mirrors"] == measured["both"]["auc_with_mirror"]


def test_an_ensemble_can_have_a_member_judge_the_crop_alone_and_its_record_says_so(tmp_path):
    from detector.ml.inference.bundle import read_metadata
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.ensemble import fit_ensemble
    from tests.conftest import build_tiny_bundle

    folder = tmp_path / "ml_models"
    left = left_half_bundle(folder / "left", flip=True)
    tiny = build_tiny_bundle(folder / "tiny", version="tiny-1")
    data = write_right_half_tinted(tmp_path / "data")
    with pytest.raises(ValueError, match="names no member: other"):
        fit_ensemble([left, tiny], folder / "none", "e-0", [data], progress=False, rule="mean", one_view=("other",))
    comparison = fit_ensemble(
        [left, tiny], folder / "both", "e-1", [data], progress=False, rule="mean", one_view=("left",)
    )
    assert comparison["one_view"] == ["left"]
    meta = read_metadata(folder / "both")
    assert [m.get("test_time_flip") for m in meta.members] == [False, None] and not meta.test_time_flip
    ensemble, alone = Detector(folder / "both"), Detector(left)
    assert not ensemble.members[0].meta.test_time_flip and alone.meta.test_time_flip  # its own bundle unchanged
    crop = red_left_crop()
    assert ensemble.members[0].face_logits(crop)[0] == pytest.approx(alone.face_logits(crop)[0] * 2)
