"""The ImageNet weights are mapped onto the Keras network correctly."""

import numpy as np
import pytest
from PIL import Image

from detector.ml.training.pth import LEGACY_MAGIC, load_state_dict

EGYPTIAN_CAT, ESPRESSO = 285, 967


@pytest.fixture(scope="module", params=["lite0", "lite1", "lite2"])
def imagenet_model(request):
    """Each variant at its own resolution (224, 240, 260 px), with its ImageNet weights."""
    from detector.ml.training.backbone import build_efficientnet_lite, load_imagenet_weights

    model = build_efficientnet_lite(request.param, include_top=True)
    load_imagenet_weights(model)
    return model


def top1(model, array):
    from detector.ml.training.backbone import scale_pixels

    side = model.input_shape[1]
    im = Image.fromarray(array).resize((side, side), Image.BILINEAR)
    probs = model(scale_pixels(np.asarray(im, np.float32))[None], training=False).numpy()[0]
    return int(probs.argmax()), float(probs.max())


def test_chelsea_is_classified_as_egyptian_cat(imagenet_model):
    skimage_data = pytest.importorskip("skimage.data")
    cls, p = top1(imagenet_model, skimage_data.chelsea())
    assert cls == EGYPTIAN_CAT and p > 0.5


def test_coffee_is_classified_as_espresso(imagenet_model):
    skimage_data = pytest.importorskip("skimage.data")
    assert top1(imagenet_model, skimage_data.coffee())[0] == ESPRESSO


@pytest.mark.parametrize(
    "variant, blocks, last_channels, parameters",
    [("lite0", 16, 320, 4_694_024), ("lite1", 21, 320, 5_470_344), ("lite2", 21, 352, 6_150_168)],
)
def test_each_checkpoint_is_read_without_pytorch_and_matches_the_network(variant, blocks, last_channels, parameters):
    import sys

    from detector.ml.training.backbone import block_names, build_efficientnet_lite, pytorch_weights_path

    sd = load_state_dict(pytorch_weights_path(variant))
    assert "torch" not in sys.modules
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd[f"_blocks.{blocks - 1}._project_conv.weight"].shape[0] == last_channels
    assert f"_blocks.{blocks}._project_conv.weight" not in sd and len(block_names(variant)) == blocks
    model = build_efficientnet_lite(variant, include_top=True)
    assert model.count_params() == parameters  # with the 1000-class top


def test_the_variants_widths_and_repeats_follow_the_reference_rounding():
    from detector.ml.training.backbone import round_filters, stages

    assert [round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [s[0] for s in stages("lite0")] == [1, 2, 2, 3, 3, 4, 1]
    assert [s[0] for s in stages("lite2")] == [1, 3, 3, 4, 4, 5, 1]  # the first and last stages are not deepened


def test_a_file_that_is_not_a_legacy_checkpoint_is_refused(tmp_path):
    import pickle

    bad = tmp_path / "bad.pth"
    bad.write_bytes(pickle.dumps(LEGACY_MAGIC + 1))
    with pytest.raises(ValueError, match="magic"):
        load_state_dict(bad)


def test_the_folded_network_computes_the_same_function():
    """Batch norm folded into the convolutions: same logits, same cached features, nothing left to normalise."""
    import keras

    from detector.ml.training.model import build_classifier, folded_copy, split_classifier

    model = build_classifier(64, imagenet=False)
    rng = np.random.default_rng(0)
    for layer in model.get_layer("efficientnet_lite0").layers:  # statistics far from the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 2.0, n)]
            )
    folded = folded_copy(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers[2].layers)
    x = rng.uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), atol=1e-3, rtol=1e-3)
    bottom, folded_bottom = split_classifier(model, 5)[0], split_classifier(folded, 5)[0]
    features = bottom(x).numpy()
    assert features.std() > 0.1  # a comparison of real numbers, not of zeros
    np.testing.assert_allclose(folded_bottom(x).numpy(), features, atol=1e-3, rtol=1e-3)
