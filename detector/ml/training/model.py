"""The classifier network: scaling, an EfficientNet-Lite backbone (Lite0 unless told) and a one-logit head."""

from __future__ import annotations

from .backbone import build_efficientnet_lite, fold_batch_norm, load_imagenet_weights

# Fine-tuning trains the blocks from this one on; the blocks before it are frozen
# and their outputs cached, which keeps training within the CPU budget.
FIRST_TRAINED_BLOCK = 5


def build_classifier(
    input_size: int = 224, imagenet: bool = True, dropout: float = 0.3, fold_bn: bool = False, backbone: str = "lite0"
):
    """Raw RGB pixels in [0, 255] -> one logit, the evidence that the face is fake."""
    import keras
    from keras import layers

    variant = backbone
    backbone = build_efficientnet_lite(variant, input_size, fold_bn=fold_bn)
    if imagenet and not fold_bn:
        load_imagenet_weights(backbone)
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = layers.Rescaling(1 / 128.0, offset=-127 / 128.0, name="scale")(inputs)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, name="fake_logit")(x)
    return keras.Model(inputs, outputs, name="deepfake_classifier")


def backbone_of(model):
    """The classifier's EfficientNet-Lite layer (``efficientnet_lite0``, ``…_lite1`` or ``…_lite2``)."""
    return next(layer for layer in model.layers if layer.name.startswith("efficientnet_"))


def folded_copy(model):
    """An inference twin of ``model`` with its batch norms folded into the convolutions (same outputs, faster)."""
    backbone = backbone_of(model)
    variant = backbone.name.removeprefix("efficientnet_")
    folded = build_classifier(model.input_shape[1], imagenet=False, fold_bn=True, backbone=variant)
    fold_batch_norm(backbone, folded.get_layer(backbone.name))
    folded.get_layer("fake_logit").set_weights(model.get_layer("fake_logit").get_weights())
    return folded


def block_output(backbone, index: int):
    """The output tensor of MBConv block ``index`` (after its residual addition, if any)."""
    names = {layer.name for layer in backbone.layers}
    for name in (f"block{index}_add", f"block{index}_project_bn", f"block{index}_project"):
        if name in names:
            return backbone.get_layer(name).output
    raise ValueError(f"the backbone has no block {index}")


def split_classifier(model, first_trained_block: int = FIRST_TRAINED_BLOCK):
    """(bottom, top, top_backbone): the frozen feature extractor and the trainable rest, sharing layers."""
    import keras

    backbone = backbone_of(model)
    cut = block_output(backbone, first_trained_block - 1)
    bottom = keras.Model(model.input, keras.Model(backbone.input, cut)(model.get_layer("scale").output))
    top_backbone = keras.Model(cut, backbone.output)
    feats = keras.Input(cut.shape[1:], name="features")
    x = top_backbone(feats)
    for name in ("pool", "dropout", "fake_logit"):
        x = model.get_layer(name)(x)
    return bottom, keras.Model(feats, x), top_backbone
