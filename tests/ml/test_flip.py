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
