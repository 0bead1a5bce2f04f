"""The generated-image model: pixel-level traces of a face at its native resolution, learnt from scratch.

GAN and diffusion generators leave traces that a face-swap detector is not taught to look
for: the periodic patterns of their up-sampling layers and noise that no camera makes
(Wang et al., CVPR 2020; Frank et al., ICML 2020). They live in the highest frequencies, so
this model sees them unresampled: its crop is the centre of the face's square at full
resolution (:data:`.preprocessing.NATIVE`), and its first layer is a bank of fixed
high-pass filters (the SRM residuals of steganalysis, Fridrich and Kodovsky, 2012),
soft-truncated, so that it learns from the noise of the picture, not from the face. A small
network on top is trained from scratch on the real photos of every source and the
generated faces (GAN and diffusion: face swaps are not its task), both classes damaged
alike (re-sampled, blurred, JPEG re-compressed, each at random) so that resolution and
compression carry no label. Its head is pool -> dropout -> fake_logit, so its heatmaps
(:mod:`.explain`) and its LiteRT export (:mod:`.export`) work as for the face models.

    python manage.py train_trace_model --dataset ../shared/datasets/faces --dataset .cache/datasets/ffpp \\
        --out ml_models/traces-v1 --model-version 2.6.0
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..inference.bundle import METADATA_FILE, BundleMetadata, Calibration, Thresholds, read_metadata, write_bundle
from ..inference.preprocessing import NATIVE
from ..measurement.dataset import Sample, counts_by_source, limited, read_manifest
from . import recipe as recipes
from .calibration import calibrate_bundle
from .crops import cached_crops
from .recipe import DEFAULT_DATASET, dataset_name, option
from .weighting import balanced_weights

log = logging.getLogger(__name__)

# The residual filters, each applied to every colour channel: first order (horizontal, vertical) and the
# second- and third-order "KV" kernels of SRM, all 5 x 5 and summing to zero (a flat patch gives nothing).
_KV3 = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], np.float32) / 4
_KV5 = (
    np.array(
        [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]], np.float32
    )
    / 12
)


def _padded(k: np.ndarray) -> np.ndarray:
    out = np.zeros((5, 5), np.float32)
    off = (5 - k.shape[0]) // 2
    out[off : off + k.shape[0], off : off + k.shape[1]] = k
    return out


RESIDUAL_FILTERS = (
    _padded(np.array([[0, 0, 0], [0, -1, 1], [0, 0, 0]], np.float32)),
    _padded(np.array([[0, 0, 0], [0, -1, 0], [0, 1, 0]], np.float32)),
    _padded(_KV3),
    _KV5,
)
TRUNCATION = 3.0  # residuals (in grey levels) are soft-clipped at about this size: edges do not drown the noise
BLOCKS = ((24, 2), (32, 1), (48, 2), (64, 1), (96, 2), (128, 1), (128, 2))  # (width, stride)


def residual_kernel() -> np.ndarray:
    """The fixed first layer's depthwise kernel, (5, 5, 3, filters): each filter on each colour channel alone."""
    return np.repeat(np.stack(RESIDUAL_FILTERS, axis=-1)[:, :, None, :], 3, axis=2)


def build_trace_model(size: int = 128, dropout: float = 0.2):
    """Raw RGB pixels in [0, 255] -> one logit: fixed residual filters, truncation, a small CNN, pool -> logit."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3), name="pixels")
    residuals = layers.DepthwiseConv2D(
        5, depth_multiplier=len(RESIDUAL_FILTERS), use_bias=False, trainable=False, name="residuals"
    )
    x = residuals(inputs)
    x = layers.Rescaling(1 / TRUNCATION, name="residual_scale")(x)
    x = layers.Activation("tanh", name="truncate")(x)
    for i, (width, stride) in enumerate(BLOCKS):
        x = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, name="fake_logit")(x)
    model = keras.Model(inputs, outputs, name="trace_classifier")
    residuals.set_weights([residual_kernel()])
    return model


@dataclass(frozen=True)
class TraceRecipe:
    """What decides what the trace model learns (saved whole in the bundle's metadata)."""

    datasets: tuple[Path, ...] = field(
        default=(DEFAULT_DATASET,),
        metadata=option(
            "dataset root with manifest.csv; repeat for several, each keeps its own splits",
            flag="--dataset",
            action="append",
            type=Path,
        ),
    )
    out: Path | None = field(default=None, metadata=option("bundle folder to write", saved=False, type=Path))
    version: str = field(default="", metadata=option("version string stored in the bundle", flag="--model-version"))
    title: str = field(
        default="Generated-face model: pixel traces at native resolution",
        metadata=option("what the model is, in a few words"),
    )
    kinds: tuple[str, ...] = field(
        default=("gan", "diffusion"),
        metadata=option(
            "the kinds of fake it learns and is chosen on, beside every real (repeat for several)",
            flag="--kind",
            action="append",
            type=str,
        ),
    )
    input_size: int = field(default=128, metadata=option("side of the native-resolution patch, in pixels"))
    train_size: int = field(
        default=192,
        metadata=option("side of the native patch cut for training, re-sampled and cropped to --input-size"),
    )
    margin: float = field(default=0.2, metadata=option("margin around the face box, as a share of its side"))
    epochs: int = field(default=8, metadata=option("passes over the training images, each freshly damaged"))
    lr: float = field(default=2e-3, metadata=option("peak learning rate (AdamW, warm-up, cosine decay)"))
    batch: int = field(default=64, metadata=option("training batch size"))
    seed: int = field(default=2026, metadata=option("seed of every random choice"))
    resample: float = field(default=0.3, metadata=option("share of the copies scaled down or up (both classes)"))
    blur: float = field(default=0.1, metadata=option("share of the copies slightly blurred (both classes)"))
    jpeg: float = field(default=0.5, metadata=option("share of the copies JPEG re-compressed at 60-98 (both classes)"))
    test_time_flip: bool = field(default=True, metadata=option("score a face as the mean of it and its mirror image"))
    max_false_accusation: float = field(
        default=0.03, metadata=option("largest share of val reals, overall and per source, called Deepfake")
    )
    max_missed_fakes: float = field(
        default=0.10, metadata=option("largest share of the val fakes it learns called Real below the lower threshold")
    )
    limit: int | None = field(default=None, metadata=option("train on a random subset (smoke runs)"))
    workers: int | None = field(default=None, metadata=option("processes for crops and copies", saved=False))
    cache_dir: Path | None = field(
        default=None, metadata=option("keep face crops here between runs", saved=False, type=Path)
    )

    def saved(self) -> dict:
        kept = {
            k: getattr(self, k)
            for k in self.__dataclass_fields__
            if self.__dataclass_fields__[k].metadata["saved"] and k not in ("version", "title")
        }
        kept["datasets"] = [dataset_name(p) for p in self.datasets]
        kept["kinds"] = list(self.kinds)
        return kept


def training_view(patch: np.ndarray, size: int, rng: np.random.Generator, recipe: TraceRecipe) -> np.ndarray:
    """A randomly damaged ``size`` crop of a native training patch, both classes alike.

    Re-sampled (down or up, by one of three filters), blurred and JPEG re-compressed, each at
    random, a random window of the patch, mirrored half the time.
    """
    im = Image.fromarray(patch)
    side = im.width
    if rng.random() < recipe.resample:
        factor = rng.uniform(size / side, 0.95) if rng.random() < 0.5 else rng.uniform(1.05, 1.5)
        method = (Image.LANCZOS, Image.BICUBIC, Image.BILINEAR)[int(rng.integers(3))]
        new = max(size, int(round(side * factor)))
        im = im.resize((new, new), method)
    if rng.random() < recipe.blur:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    x0, y0 = (int(rng.integers(0, im.width - size + 1)) for _ in range(2))
    im = im.crop((x0, y0, x0 + size, y0 + size))
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < recipe.jpeg:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(60, 99)))
        im = Image.open(buf).convert("RGB")
    return np.asarray(im, np.uint8)


def _views(args):
    patches, size, seed, recipe = args
    rng = np.random.default_rng(seed)
    return np.stack([training_view(p, size, rng, recipe) for p in patches])


def epoch_views(patches: np.ndarray, recipe: TraceRecipe, epoch: int, workers: int) -> np.ndarray:
    """One freshly damaged copy of every training patch, made in ``workers`` processes (seeded by epoch)."""
    chunks = np.array_split(np.arange(len(patches)), max(1, workers * 4))
    jobs = [(patches[c], recipe.input_size, (recipe.seed, epoch, k), recipe) for k, c in enumerate(chunks) if len(c)]
    with Pool(workers) as pool:
        return np.concatenate(pool.map(_views, jobs))


def read_samples(recipe: TraceRecipe, split: str) -> list[Sample]:
    """The split's reals and the fakes of the recipe's kinds, over every dataset."""
    samples = [s for root in recipe.datasets for s in read_manifest(root, split)]
    return [s for s in samples if s.label == 0 or s.kind in recipe.kinds]


def train(recipe: TraceRecipe) -> BundleMetadata:
    """Train from scratch on ``train``, choose the epoch on ``val``, calibrate on ``val``; write the bundle."""
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    started, workers = recipes.begin(recipe)
    train_samples, val_samples = read_samples(recipe, "train"), read_samples(recipe, "val")
    if recipe.limit:
        train_samples, val_samples = limited(train_samples, val_samples, recipe.limit, recipe.seed)
    key = "+".join(dataset_name(p).rsplit("/", 1)[-1] for p in recipe.datasets) + "-traces"
    patches, found = cached_crops(
        train_samples, recipe.train_size, recipe.margin, workers, recipe.cache_dir, f"{key}-train", NATIVE
    )
    val_crops, val_found = cached_crops(
        val_samples, recipe.input_size, recipe.margin, workers, recipe.cache_dir, f"{key}-val", NATIVE
    )
    y = np.array([s.label for s in train_samples], np.float32)
    w = balanced_weights(train_samples)
    y_val = np.array([s.label for s in val_samples])

    model = build_trace_model(recipe.input_size)
    steps = recipe.epochs * math.ceil(len(patches) / recipe.batch)
    warmup = min(200, steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, steps - warmup), alpha=0.02, warmup_target=recipe.lr, warmup_steps=warmup
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    predict = tf.function(lambda x: model(x, training=False))

    def val_logits() -> np.ndarray:
        batches = [val_crops[i : i + 256].astype(np.float32) for i in range(0, len(val_crops), 256)]
        plain = np.concatenate([predict(b).numpy().ravel() for b in batches])
        if not recipe.test_time_flip:
            return plain
        mirrored = np.concatenate([predict(b[:, :, ::-1]).numpy().ravel() for b in batches])
        return (plain + mirrored) / 2

    history, best = [], {"auc": -1.0}
    for epoch in range(1, recipe.epochs + 1):
        x = epoch_views(patches, recipe, epoch, workers)
        fit = model.fit(x, y, sample_weight=w, batch_size=recipe.batch, epochs=1, shuffle=True, verbose=2)
        auc = float(roc_auc_score(y_val, val_logits()))
        loss = float(fit.history["loss"][-1])
        history.append(
            {"stage": "from scratch", "epoch": epoch, "train_loss": round(loss, 4), "val_auc": round(auc, 4)}
        )
        log.info("epoch %d: loss %.4f, val AUC %.4f", epoch, loss, auc)
        if auc > best["auc"]:
            best = {"auc": auc, "where": f"epoch {epoch}", "weights": model.get_weights()}
    model.set_weights(best.pop("weights"))
    minutes = (time.time() - started) / 60
    meta = BundleMetadata(
        name=recipe.out.name,
        version=recipe.version,
        input_size=recipe.input_size,
        face_margin=recipe.margin,
        crop_scale=NATIVE,
        calibration=Calibration(),
        thresholds=Thresholds(),
        test_time_flip=recipe.test_time_flip,
        training={
            "title": recipe.title,
            "dataset": (
                f"{' + '.join(dataset_name(p) for p in recipe.datasets)}: every real and the fakes of kind "
                f"{', '.join(recipe.kinds)} (train split; val for epoch, calibration and thresholds)"
            ),
            "train_images": len(train_samples),
            "val_images": len(val_samples),
            "train_by_source": counts_by_source(train_samples),
            "train_face_found_rate": float(found.mean()),
            "val_face_found_rate": float(val_found.mean()),
            "val_auc": best["auc"],
            "chosen": best["where"],
            "history": history,
            "recipe": recipe.saved(),
            "parameters": int(model.count_params()),
            "minutes": round(minutes, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    write_bundle(recipe.out, model, meta)
    calibrate_bundle(recipe.out, val_samples, recipe.max_false_accusation, recipe.max_missed_fakes)
    return never_real(recipe.out)


NEVER_REAL = (
    "never: it judges generated faces only and says nothing of face swaps, so below the Deepfake threshold a "
    "face is Uncertain, not Real"
)


def never_real(path: Path) -> BundleMetadata:
    """Set the bundle's Real threshold to 0: a model of generated faces alone never tells anyone a face is real
    (a face swap looks real to it), so below its Deepfake threshold a face is Uncertain."""
    meta = read_metadata(path)
    meta.thresholds.real_below = 0.0
    meta.training.setdefault("calibration", {})["real_rule"] = NEVER_REAL
    (Path(path) / METADATA_FILE).write_text(meta.to_json())
    return meta


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return recipes.add_arguments(parser, TraceRecipe)


def run(options: dict) -> dict:
    """Train the trace model from parsed options, export it, and say what to print."""
    from .export import trained_summary

    recipe, _ = recipes.from_options(options, TraceRecipe)
    if recipe.out is None or not recipe.version:
        raise ValueError("--out and --model-version are required")
    log.info("recipe: %s", json.dumps(recipes.describe(recipe)))
    return trained_summary(recipe.out, recipe.datasets[0], train(recipe))


def main(argv=None) -> None:
    recipes.command_line(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    main()
