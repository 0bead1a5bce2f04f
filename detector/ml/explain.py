"""Why a face was scored as it was: Grad-CAM heatmaps of the fake logit.

Grad-CAM (Selvaraju et al., 2017) weights each channel of the last convolutional
feature map by the mean gradient of the fake logit with respect to it, sums the
weighted channels and keeps the positive part: the regions whose activation
raises the fake score.  The feature map is the input of the layer named
``pool`` (the classifier's global average pooling), so any bundle built by
:func:`detector.ml.model.build_classifier` can be explained.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

POOL_LAYER = "pool"


class GradCam:
    """Heatmaps for a Keras classifier whose ``pool`` layer receives the last feature map."""

    def __init__(self, model):
        import keras
        import tensorflow as tf

        self._model = keras.Model(model.inputs, [model.get_layer(POOL_LAYER).input, model.output])
        self._tf = tf

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W) maps in [0, 1] at the crops' size; all zero where nothing raises the fake score."""
        tf = self._tf
        x = tf.constant(crops, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)  # where the pooled "features" are the pixels themselves
            features, logits = self._model(x, training=False)
            target = tf.reduce_sum(logits[:, 0])
        grads = tape.gradient(target, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()
        size = crops.shape[1:3]
        out = np.zeros((len(cams), *size), np.float32)
        for i, cam in enumerate(cams):
            peak = cam.max()
            if peak > 0:
                img = Image.fromarray((cam / peak * 255).astype(np.uint8)).resize(size[::-1], Image.BILINEAR)
                out[i] = np.asarray(img, np.float32) / 255.0
        return out


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
