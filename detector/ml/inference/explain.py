"""Why a face was scored as it was: Grad-CAM heatmaps of the fake logit.

Grad-CAM (Selvaraju et al., 2017) weights each channel of the last convolutional
feature map by the mean gradient of the fake logit with respect to it, sums the
weighted channels and keeps the positive part: the regions whose activation
raises the fake score.  The feature map is the input of the layer named
``pool`` (the classifier's global average pooling), so any bundle built by
:func:`detector.ml.training.model.build_classifier` can be explained.

Behind global average pooling, dropout and one dense unit the gradient is the
same at every position, ``w_c / (H * W)``, so Grad-CAM equals the class
activation map ``relu(sum_c w_c A_c / (H * W))``.  That map needs no gradients:
:func:`class_activation_map` builds it into the network, the LiteRT export
carries it as a second output, and serving draws heatmaps without TensorFlow.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

POOL_LAYER = "pool"
HEADS = (["dropout", "fake_logit"], ["fake_logit"])  # what may follow the pooling: linear in the features


def class_activation_map(model):
    """The symbolic (N, H, W) map of the model's fake evidence per position; ValueError for another head."""
    import keras

    pool = model.get_layer(POOL_LAYER)
    after_pool = [layer.name for layer in model.layers[model.layers.index(pool) + 1 :]]
    if not isinstance(pool, keras.layers.GlobalAveragePooling2D) or after_pool not in HEADS:
        raise ValueError(f"class activation maps need a pool -> (dropout) -> fake_logit head, not {after_pool}")
    features = pool.input
    kernel = model.get_layer("fake_logit").get_weights()[0][:, 0]
    height, width = features.shape[1], features.shape[2]
    weights = keras.ops.convert_to_tensor(kernel / (height * width))
    return keras.ops.relu(keras.ops.einsum("nhwc,c->nhw", features, weights))


def upsample(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Raw maps -> (N, H, W) heatmaps in [0, 1] at the crops' size; all zero where nothing raises the score."""
    out = np.zeros((len(cams), *size), np.float32)
    for i, cam in enumerate(cams):
        peak = cam.max()
        if peak > 0:
            img = Image.fromarray((cam / peak * 255).astype(np.uint8)).resize(size[::-1], Image.BILINEAR)
            out[i] = np.asarray(img, np.float32) / 255.0
    return out


class GradCam:
    """Heatmaps for a Keras classifier whose ``pool`` layer receives the last feature map."""

    def __init__(self, model):
        import keras
        import tensorflow as tf

        self._model = keras.Model(model.inputs, [model.get_layer(POOL_LAYER).input, model.output])
        self._tf = tf

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W) maps in [0, 1] at the crops' size; all zero where nothing raises the fake score."""
        return upsample(self.maps(crops), crops.shape[1:3])

    def maps(self, crops: np.ndarray) -> np.ndarray:
        """The raw (N, h, w) maps at the feature map's size, before scaling (see :func:`upsample`)."""
        tf = self._tf
        x = tf.constant(crops, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)  # where the pooled "features" are the pixels themselves
            features, logits = self._model(x, training=False)
            target = tf.reduce_sum(logits[:, 0])
        grads = tape.gradient(target, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()


def overlay_png(crop: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> bytes:
    """The face crop with the heatmap blended over it (transparent blue to opaque red), as PNG."""
    import matplotlib

    colours = matplotlib.colormaps["jet"](heatmap)[..., :3]
    weight = (alpha * heatmap)[..., None]
    blended = crop.astype(np.float32) / 255.0 * (1 - weight) + colours * weight
    buf = io.BytesIO()
    Image.fromarray((blended * 255).round().astype(np.uint8)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def crop_png(crop: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, "PNG", optimize=True)
    return buf.getvalue()
