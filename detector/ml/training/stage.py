"""Train the deepfake classifier on one or more face datasets and write a model bundle.

One stage, as a :class:`~.recipe.Recipe` says (sized for 2 CPU cores): crop
every image's main face with the serving preprocessing (:mod:`.crops`); find
the DFDC swaps whose real frame is in the dataset too and where the swap
changed it (:mod:`.pairs`); make augmented copies of the training crops, for
both classes alike, plus self-blended pseudo-fakes of the real crops, each with
the mask of what was changed (:mod:`.copies`); run them once through the frozen
lower blocks and keep the result (:mod:`.features`); weigh them so that both
classes and every source count (:mod:`.weighting`); fine-tune the upper blocks
and the head with a mask head beside the classifier, keeping the epoch with the
best validation AUC (:mod:`.trainer`); fit the calibration and the thresholds on
``val`` (:mod:`.calibration`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import time
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from ..inference.bundle import BundleMetadata, Calibration, Thresholds, load_keras_model, read_metadata, write_bundle
from ..measurement.dataset import Sample, counts_by_source, limited, read_manifest
from . import recipe as recipes
from .calibration import calibrate_bundle
from .copies import CopyMaker, copy_jobs
from .crops import cached_crops, crop_landmarks
from .export import trained_summary
from .features import cached_features, extract_features, inference
from .model import backbone_of, build_classifier, folded_copy, split_classifier
from .pairs import frame_pairs
from .recipe import Recipe, dataset_name
from .trainer import MaskedTrainer
from .weighting import copy_labels_and_weights

log = logging.getLogger(__name__)


def read_splits(recipe: Recipe, *splits: str) -> list[list[Sample]]:
    """Each split's samples over every dataset of the recipe, each dataset keeping its own split column.

    Sources the recipe excludes are left out of every split; with ``pseudo_fakes_only``
    the training split keeps its reals alone.
    """
    out = []
    for split in splits:
        samples = [s for root in recipe.datasets for s in read_manifest(root, split)]
        samples = [s for s in samples if s.source not in recipe.exclude_sources]
        if split == "train" and recipe.pseudo_fakes_only:
            samples = [s for s in samples if s.label == 0]
        out.append(samples)
    return out


def train(recipe: Recipe) -> BundleMetadata:
    """Train on ``train``, choose on ``val``, write the bundle to ``recipe.out``."""
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    started, workers = recipes.begin(recipe)
    train_samples, val_samples = read_splits(recipe, "train", "val")
    if recipe.limit:
        train_samples, val_samples = limited(train_samples, val_samples, recipe.limit, recipe.seed)
    y_val = np.array([s.label for s in val_samples], np.float32)
    # The val images the epoch is chosen on: every real, and the fakes of the kinds the recipe names (default: all).
    chosen_on = np.array(
        [s.label == 0 or not recipe.choose_on_kinds or s.kind in recipe.choose_on_kinds for s in val_samples]
    )

    names = [dataset_name(p) for p in recipe.datasets]
    cache_key = "+".join(_file_part(n) for n in names)
    size, margin = recipe.input_size, recipe.margin
    train_crops, train_found = cached_crops(
        train_samples, size, margin, workers, recipe.cache_dir, f"{cache_key}-train"
    )
    val_crops, val_found = cached_crops(val_samples, size, margin, workers, recipe.cache_dir, f"{cache_key}-val")
    pairs = frame_pairs(train_samples, size, margin, workers) if recipe.mask_weight else {}
    labels = np.array([s.label for s in train_samples])
    landmarks = None
    if recipe.landmark_masks and recipe.self_blend_copies:
        landmarks = crop_landmarks(train_crops, np.flatnonzero(labels == 0), workers)

    init_meta = None
    if recipe.init_from is not None:  # continue from a trained bundle's weights
        init_meta = read_metadata(recipe.init_from)
        model = load_keras_model(recipe.init_from, init_meta)
        found = backbone_of(model).name.removeprefix("efficientnet_")
        if found != recipe.backbone:
            raise ValueError(
                f"{recipe.init_from} is an EfficientNet-{found.title()}; this recipe asks for {recipe.backbone}"
            )
    else:
        model = build_classifier(size, backbone=recipe.backbone)
    bottom = split_classifier(folded_copy(model), recipe.first_trained_block)[0]
    _, top, top_backbone = split_classifier(model, recipe.first_trained_block)

    maker = CopyMaker(
        crops=train_crops,
        labels=labels,
        kinds=np.array([s.kind for s in train_samples]),
        pairs=pairs,
        seed=recipe.seed,
        margin=margin,
        strength=recipe.augment_strength,
        grid=int(top_backbone.output.shape[1]),  # the last feature map's side: ceil(size / 32), 9 at 260 px
        zoom=recipe.zoom,
        landmarks=landmarks,
    )
    jobs = copy_jobs(maker.labels, recipe.augment_copies, recipe.self_blend_copies)
    feats, targets, mask_weights = cached_features(bottom, jobs, maker, workers)
    y, w = copy_labels_and_weights(train_samples, jobs, recipe.self_blend_share)
    del train_crops, maker
    val_feats = extract_features(bottom, val_crops)
    predict = inference(top)

    def val_auc() -> float:
        logits = np.concatenate(
            [
                predict(tf.constant(val_feats[i : i + 256], tf.float32)).numpy().ravel()
                for i in range(0, len(val_feats), 256)
            ]
        )
        return float(roc_auc_score(y_val[chosen_on], logits[chosen_on]))

    steps = recipe.epochs * math.ceil(len(feats) / recipe.batch)
    trainer = MaskedTrainer(
        top, top_backbone, lr=recipe.lr, steps=steps, mask_weight=recipe.mask_weight, bf16=recipe.bf16
    )
    history, best = trainer.fit(
        feats, y, w, targets, mask_weights, epochs=recipe.epochs, batch=recipe.batch, seed=recipe.seed, validate=val_auc
    )
    minutes = (time.time() - started) / 60
    counts = Counter(kind for kind, _, _ in jobs)
    meta = BundleMetadata(
        name=recipe.out.name,
        version=recipe.version,
        input_size=size,
        face_margin=margin,
        calibration=Calibration(),
        thresholds=Thresholds(),
        test_time_flip=recipe.test_time_flip,
        training={
            "dataset": f"{' + '.join(names)} (train split; val for epoch, calibration and thresholds)",
            "train_images": len(train_samples),
            "val_images": len(val_samples),
            "train_by_source": counts_by_source(train_samples),
            "self_blended_pseudo_fakes": counts["self_blend"],
            "frame_pairs": len(pairs),
            "train_face_found_rate": float(train_found.mean()),
            "val_face_found_rate": float(val_found.mean()),
            "val_auc": best["auc"],
            "chosen": best["where"],
            "history": history,
            "recipe": recipe.saved(init_meta.version if init_meta else None),
            "minutes": round(minutes, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    if recipe.title:
        meta.training["title"] = recipe.title
    if landmarks is not None:  # real crops whose blend masks follow their landmarks (the rest: an ellipse)
        meta.training["landmark_masks"] = {"reals": int((labels == 0).sum()), "found": len(landmarks)}
    if init_meta is not None:
        meta.training.update(stage_lineage(init_meta, meta.training["minutes"]))
    write_bundle(recipe.out, model, meta)
    return calibrate_bundle(recipe.out, val_samples, recipe.max_false_accusation, recipe.max_missed_fakes)


def _file_part(name: str) -> str:
    """A dataset's name as a file-name part: shared/datasets/faces -> faces."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def stage_lineage(earlier: BundleMetadata, minutes: float) -> dict:
    """What a continued run started from: the earlier stage's summary (nested for each stage) and the total time."""
    t = earlier.training
    keep = ("chosen", "history", "minutes", "recipe", "val_auc", "previous_stage")
    previous = {"version": earlier.version, **{k: t[k] for k in keep if k in t}}
    return {
        "previous_stage": previous,
        "minutes_total": round(minutes + t.get("minutes_total", t.get("minutes", 0.0)), 1),
    }


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The recipe's options, and --calibrate-only."""
    recipes.add_arguments(parser)
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="keep the weights of --out; refit its calibration and thresholds on val (with --model-version: "
        "under that version; with --test-time-flip or --no-test-time-flip: scored that way)",
    )
    return parser


def run(options: dict) -> dict:
    """Train a stage (or, with ``calibrate_only``, refit a bundle) from parsed options; what to print."""
    recipe, given = recipes.from_options(options)
    if recipe.out is None:
        raise ValueError("--out is required")
    if options.get("calibrate_only"):
        (val_samples,) = read_splits(recipe, "val")
        meta = calibrate_bundle(
            recipe.out,
            val_samples,
            recipe.max_false_accusation,
            recipe.max_missed_fakes,
            test_time_flip=recipe.test_time_flip if "test_time_flip" in given else None,
            version=recipe.version or None,
        )
        return {
            "bundle": str(recipe.out),
            "version": meta.version,
            "test_time_flip": meta.test_time_flip,
            "calibration": vars(meta.calibration),
            "thresholds": vars(meta.thresholds),
        }
    if not recipe.version:
        raise ValueError("--model-version is required when training")
    if recipe.init_from is not None:
        recipe = recipe.continuing(read_metadata(recipe.init_from).training.get("recipe", {}), given)
    log.info("recipe: %s", json.dumps(recipes.describe(recipe)))
    return trained_summary(recipe.out, recipe.datasets[0], train(recipe))


def main(argv=None) -> None:
    recipes.command_line(__doc__, add_arguments, run, argv)


if __name__ == "__main__":
    main()
