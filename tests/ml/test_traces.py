"""The generated-image model: fixed residual filters on native-resolution crops, trained from scratch."""

import numpy as np
import pytest
from PIL import Image

from tests.ml.test_augment import face_like
from tests.ml.test_training import write_dataset


def test_the_residual_filters_see_noise_not_flat_colour_or_smooth_gradients():
    import keras

    from detector.ml.training.traces import RESIDUAL_FILTERS, build_trace_model

    for k in RESIDUAL_FILTERS:
        assert k.shape == (5, 5) and k.sum() == pytest.approx(0.0, abs=1e-6)
    model = build_trace_model(32)
    residuals = keras.Model(model.input, model.get_layer("truncate").output)
    assert not model.get_layer("residuals").trainable
    flat = np.full((1, 32, 32, 3), 137.0, np.float32)
    ramp = np.broadcast_to(np.arange(32, dtype=np.float32)[None, None, :, None] * 4, (1, 32, 32, 3)).copy()
    noisy = flat + np.random.default_rng(0).normal(0, 3, flat.shape).astype(np.float32)
    assert np.abs(residuals(flat)).max() == pytest.approx(0.0, abs=1e-5)
    assert np.abs(residuals(ramp)[..., 2::4]).max() == pytest.approx(0.0, abs=1e-5)  # second order: a ramp is flat
    assert np.abs(residuals(noisy)).mean() > 0.1
    assert np.abs(residuals(noisy * 100)).max() <= 1.0  # truncated: strong edges do not drown the noise


def test_a_training_view_is_a_damaged_window_of_the_patch_and_reproducible():
    from detector.ml.training.traces import TraceRecipe, training_view

    patch = face_like(48, seed=1)
    recipe = TraceRecipe(resample=1.0, blur=0.0, jpeg=1.0)
    a = training_view(patch, 32, np.random.default_rng(5), recipe)
    b = training_view(patch, 32, np.random.default_rng(5), recipe)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    untouched = training_view(patch, 32, np.random.default_rng(5), TraceRecipe(resample=0.0, blur=0.0, jpeg=0.0))
    windows = [patch[y : y + 32, x : x + 32] for y in range(17) for x in range(17)]
    windows += [w[:, ::-1] for w in windows]
    assert any(np.array_equal(untouched, w) for w in windows)  # undamaged: native pixels, only cut and mirrored


def test_a_whole_trace_model_run_writes_a_native_bundle_that_serves_explains_and_exports(tmp_path):
    from detector.ml.inference.bundle import read_metadata
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.export import export_bundle
    from detector.ml.training.traces import TraceRecipe, train

    write_dataset(tmp_path / "data")
    recipe = TraceRecipe(
        datasets=(tmp_path / "data",),
        out=tmp_path / "traces",
        version="0.0.1",
        input_size=32,
        train_size=48,
        epochs=2,
        batch=4,
        workers=1,
    )
    meta = train(recipe)
    t = meta.training
    assert meta.crop_scale == "native" and meta.crop_spec.size == 32
    assert set(t["train_by_source"]) == {"dfdc/real", "gan256/fake"}  # the swaps are not its task
    assert (
        len(t["history"]) == 2 and t["recipe"]["kinds"] == ["gan", "diffusion"] and t["calibration"]["split"] == "val"
    )
    assert read_metadata(tmp_path / "traces").crop_scale == "native"
    # It judges generated faces only: it never calls a face Real (a face swap looks real to it).
    assert meta.thresholds.real_below == 0.0 and meta.thresholds.label(0.0) == "Uncertain"
    assert t["calibration"]["real_rule"].startswith("never: it judges generated faces only")
    detector = Detector(tmp_path / "traces", engine="keras")
    verdict = detector.judge(Image.fromarray(face_like(96)))
    assert 0.0 <= verdict.fake_probability <= 1.0
    maps = detector.heatmaps(detector.prepare(Image.fromarray(face_like(96))))
    assert maps.shape == (1, 32, 32)
    record = export_bundle(tmp_path / "traces")
    assert record["check"]["max_probability_difference"] <= 0.01
    served = Detector(tmp_path / "traces")
    assert served.judge(Image.fromarray(face_like(96))).fake_probability == pytest.approx(
        verdict.fake_probability, abs=0.01
    )
