"""The ImageNet weights are mapped onto the Keras network correctly."""

import numpy as np
import pytest
from PIL import Image

from detector.ml.pth import LEGACY_MAGIC, load_state_dict

EGYPTIAN_CAT, ESPRESSO = 285, 967


@pytest.fixture(scope="module")
def imagenet_model():
    from detector.ml.backbone import build_efficientnet_lite0, load_imagenet_weights

    model = build_efficientnet_lite0(224, include_top=True)
    load_imagenet_weights(model)
    return model


def top1(model, array):
    from detector.ml.backbone import scale_pixels

    im = Image.fromarray(array).resize((224, 224), Image.BILINEAR)
    probs = model(scale_pixels(np.asarray(im, np.float32))[None], training=False).numpy()[0]
    return int(probs.argmax()), float(probs.max())


def test_chelsea_is_classified_as_egyptian_cat(imagenet_model):
    skimage_data = pytest.importorskip("skimage.data")
    cls, p = top1(imagenet_model, skimage_data.chelsea())
    assert cls == EGYPTIAN_CAT and p > 0.5


def test_coffee_is_classified_as_espresso(imagenet_model):
    skimage_data = pytest.importorskip("skimage.data")
    assert top1(imagenet_model, skimage_data.coffee())[0] == ESPRESSO


def test_checkpoint_is_read_without_pytorch():
    import sys

    from detector.ml.backbone import pytorch_weights_path

    sd = load_state_dict(pytorch_weights_path())
    assert "torch" not in sys.modules
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)


def test_a_file_that_is_not_a_legacy_checkpoint_is_refused(tmp_path):
    import pickle

    bad = tmp_path / "bad.pth"
    bad.write_bytes(pickle.dumps(LEGACY_MAGIC + 1))
    with pytest.raises(ValueError, match="magic"):
        load_state_dict(bad)
