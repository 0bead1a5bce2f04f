"""Heatmaps point at what raises the fake score."""

import io

import numpy as np
import pytest
from PIL import Image


def region_model(size=32):
    """A model whose fake logit is the mean red value of the top-left quadrant only."""
    import keras

    mask = np.zeros((1, size, size, 1), np.float32)
    mask[:, : size // 2, : size // 2] = 1.0
    inputs = keras.Input((size, size, 3))
    red = keras.layers.Conv2D(1, 1, use_bias=False, name="red")(inputs)
    focused = keras.layers.Lambda(lambda t: t * mask)(red)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(focused)
    logit = keras.layers.Dense(1, name="fake_logit")(pooled)
    model = keras.Model(inputs, logit)
    model.get_layer("red").set_weights([np.array([[[[1.0], [0.0], [0.0]]]], np.float32)])
    model.get_layer("fake_logit").set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    return model


def test_the_heatmap_is_hot_where_the_fake_score_comes_from():
    from detector.ml.inference.explain import GradCam

    uniform_red = np.full((1, 32, 32, 3), (200, 30, 30), np.uint8)
    heat = GradCam(region_model()).heatmaps(uniform_red)[0]
    assert heat[:16, :16].mean() > 0.9
    assert heat[16:, :].max() < 0.1 and heat[:, 16:].max() < 0.1


def test_nothing_raising_the_score_gives_an_empty_map():
    from detector.ml.inference.explain import GradCam

    black = np.zeros((2, 32, 32, 3), np.uint8)
    assert GradCam(region_model()).heatmaps(black).max() == 0.0


def test_overlay_is_a_png_of_the_crop_size():
    from detector.ml.inference.explain import overlay_png

    crop = np.full((32, 32, 3), 128, np.uint8)
    heat = np.zeros((32, 32), np.float32)
    heat[:8, :8] = 1.0
    im = Image.open(io.BytesIO(overlay_png(crop, heat)))
    assert im.format == "PNG" and im.size == (32, 32)
    pixels = np.asarray(im)
    assert pixels[0, 0, 0] > pixels[0, 0, 2]  # hot: red
    assert tuple(pixels[31, 31]) == (128, 128, 128)  # cold: the crop itself


@pytest.mark.parametrize("fixture", ["tiny_bundle"])
def test_bundles_built_by_the_project_can_be_explained(request, fixture):
    from detector.ml.inference.explain import GradCam
    from detector.ml.inference.predictor import Detector

    detector = Detector(request.getfixturevalue(fixture))
    crops = np.full((1, 32, 32, 3), (250, 0, 0), np.uint8)
    assert GradCam(detector.model).heatmaps(crops).shape == (1, 32, 32)
