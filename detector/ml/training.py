"""Train the deepfake classifier on the face dataset and write a model bundle.

Recipe (sized for 2 CPU cores): crop every image's main face with the serving
preprocessing; make augmented copies of the training crops (flip, down-and-up
scaling, blur, JPEG re-compression, applied to both classes alike); optionally
add self-blended pseudo-fakes made from the real crops (``augment.self_blend``);
cache the frozen lower backbone's features; train the head, then fine-tune the
top blocks on the cache; pick the epoch, the calibration and the thresholds on
``val``.
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
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .augment import degrade, self_blend
from .bundle import METADATA_FILE, BundleMetadata, Calibration, Thresholds, write_bundle
from .dataset import Sample, read_manifest
from .export import export_bundle
from .model import FIRST_TRAINED_BLOCK, build_classifier, split_classifier
from .preprocessing import DEFAULT_INPUT_SIZE, DEFAULT_MARGIN, PREPROCESSING_VERSION, FaceFinder, decode_image, prepare

log = logging.getLogger(__name__)

SELF_BLEND_STREAM = 7  # keeps the pseudo-fakes' random numbers apart from the plain copies'

_finder = None


def _init_worker():
    global _finder
    _finder = FaceFinder(num_threads=1)


def _crop_one(args):
    path, size, margin = args
    prepared = prepare(decode_image(str(path)), _finder, size, margin, max_faces=1)
    return prepared.crops[0].pixels, prepared.face_found


def crop_samples(samples: list[Sample], size: int, margin: float, workers: int, desc: str):
    """Main-face crops of every sample (uint8) and whether a face was found."""
    crops = np.empty((len(samples), size, size, 3), np.uint8)
    found = np.empty(len(samples), bool)
    jobs = [(s.path, size, margin) for s in samples]
    with Pool(workers, initializer=_init_worker) as pool:
        results = pool.imap(_crop_one, jobs, chunksize=32)
        for i, (pixels, ok) in enumerate(tqdm(results, total=len(jobs), desc=desc, unit="img")):
            crops[i], found[i] = pixels, ok
    return crops, found


def cached_crops(samples, size, margin, workers, cache_dir: Path | None, name: str):
    if cache_dir is None:
        return crop_samples(samples, size, margin, workers, f"faces {name}")
    path = cache_dir / f"crops-{name}-p{PREPROCESSING_VERSION}-{size}-{margin}-{len(samples)}.npz"
    if path.exists():
        data = np.load(path)
        return data["crops"], data["found"]
    crops, found = crop_samples(samples, size, margin, workers, f"faces {name}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, crops=crops, found=found)
    return crops, found


def extract_features(bottom, crops: np.ndarray, batch: int = 64, desc: str = "features", transform=None):
    import tensorflow as tf

    run = tf.function(lambda x: bottom(x, training=False), reduce_retracing=True)
    out = None
    for start in tqdm(range(0, len(crops), batch), desc=desc, unit="batch"):
        chunk = crops[start : start + batch]
        if transform is not None:
            chunk = np.stack([transform(start + i, c) for i, c in enumerate(chunk)])
        f = run(tf.constant(chunk, tf.float32)).numpy().astype(np.float16)
        if out is None:
            out = np.empty((len(crops), *f.shape[1:]), np.float16)
        out[start : start + len(f)] = f
    return out


def balanced_weights(samples: list[Sample]) -> np.ndarray:
    """Both classes weigh the same; within a class, sources count by sqrt(size) so small ones matter."""
    groups = Counter((s.label, s.source) for s in samples)
    w = np.array([1.0 / math.sqrt(groups[(s.label, s.source)]) for s in samples])
    labels = np.array([s.label for s in samples])
    for c in (0, 1):
        w[labels == c] *= (len(samples) / 2) / w[labels == c].sum()
    return w.astype(np.float32)


def add_pseudo_fakes(y: np.ndarray, w: np.ndarray, count: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Append ``count`` pseudo-fake rows that carry ``share`` of the fake class's weight.

    The fake class keeps its total weight (so both classes still weigh the
    same); the real fakes give up ``share`` of it, each source in proportion.
    """
    if not 0 < share < 1:
        raise ValueError("the pseudo-fakes' share of the fake class must be between 0 and 1")
    fake_total = float(w[y == 1].sum())
    w = w.copy()
    w[y == 1] *= 1 - share
    added = np.full(count, share * fake_total / count, np.float32)
    return np.concatenate([y, np.ones(count, np.float32)]), np.concatenate([w, added]).astype(np.float32)


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> Calibration:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1), labels)
    return Calibration(float(lr.coef_[0, 0]), float(lr.intercept_[0]))


def choose_threshold(probs, labels, sources, max_far: float, min_source_n: int = 50) -> float:
    """Lowest threshold whose false-accusation rate on val is within ``max_far``, overall and per real source.

    For each group of reals, at most k = floor(max_far * n) may score at or above
    the threshold, so it sits just above the group's (k+1)-th highest score.
    """
    reals = labels == 0
    groups = [reals] + [
        reals & (sources == s) for s in np.unique(sources[reals]) if (reals & (sources == s)).sum() >= min_source_n
    ]
    threshold = 0.0
    for group in groups:
        ranked = np.sort(probs[group])[::-1]
        k = int(np.floor(max_far * len(ranked)))
        if k < len(ranked):
            threshold = max(threshold, float(np.nextafter(ranked[k], 1.0)))
    return threshold


def train(
    dataset: Path,
    out: Path,
    *,
    version: str,
    epochs_head: int = 1,
    epochs_finetune: int = 3,
    augment_copies: int = 3,
    batch: int = 64,
    seed: int = 1337,
    max_far: float = 0.03,
    uncertain_band: float = 1.0,
    input_size: int = DEFAULT_INPUT_SIZE,
    margin: float = DEFAULT_MARGIN,
    cache_dir: Path | None = None,
    workers: int | None = None,
    limit: int | None = None,
    first_trained_block: int = FIRST_TRAINED_BLOCK,
    lr_finetune: float = 3e-4,
    init_from: Path | None = None,
    self_blend_copies: int = 0,
    self_blend_share: float = 0.2,
) -> BundleMetadata:
    """Train on ``train``, choose on ``val``, write the bundle to ``out``."""
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    started = time.time()
    keras.utils.set_random_seed(seed)
    workers = workers or os.cpu_count() or 1
    train_samples, val_samples = read_manifest(dataset, "train"), read_manifest(dataset, "val")
    if limit:
        rng = np.random.default_rng(seed)
        train_samples = [train_samples[i] for i in sorted(rng.choice(len(train_samples), limit, replace=False))]
        val_samples = [
            val_samples[i] for i in sorted(rng.choice(len(val_samples), min(limit, len(val_samples)), replace=False))
        ]
    y_train = np.array([s.label for s in train_samples], np.float32)
    y_val = np.array([s.label for s in val_samples], np.float32)

    train_crops, train_found = cached_crops(train_samples, input_size, margin, workers, cache_dir, "train")
    val_crops, val_found = cached_crops(val_samples, input_size, margin, workers, cache_dir, "val")

    if init_from is not None:  # continue from a trained bundle's weights, e.g. to unfreeze more blocks
        from .bundle import load_keras_model, read_metadata

        init_meta = read_metadata(init_from)
        model = load_keras_model(init_from, init_meta)
    else:
        model = build_classifier(input_size)
    bottom, top, top_backbone = split_classifier(model, first_trained_block)
    for layer in top_backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # small data: keep ImageNet statistics

    def augmented(copy):
        def transform(i, pixels):
            return degrade(pixels, np.random.default_rng([seed, copy, i]))

        return transform

    def self_blended(copy):
        def transform(i, pixels):
            rng = np.random.default_rng([seed, SELF_BLEND_STREAM, copy, i])
            return degrade(self_blend(pixels, rng, margin), rng)

        return transform

    parts = [
        extract_features(
            bottom, train_crops, desc=f"features train copy {c + 1}/{augment_copies}", transform=augmented(c)
        )
        for c in range(augment_copies)
    ]
    real_idx = np.flatnonzero(y_train == 0)
    parts += [
        extract_features(
            bottom,
            train_crops[real_idx],
            desc=f"features self-blended copy {c + 1}/{self_blend_copies}",
            transform=self_blended(c),
        )
        for c in range(self_blend_copies)
    ]
    feats = np.concatenate(parts)
    del train_crops, parts
    val_feats = extract_features(bottom, val_crops, desc="features val")
    y = np.tile(y_train, augment_copies)
    w = np.tile(balanced_weights(train_samples), augment_copies)
    if self_blend_copies:
        y, w = add_pseudo_fakes(y, w, len(real_idx) * self_blend_copies, self_blend_share)

    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    predict = tf.function(lambda x: top(x, training=False), reduce_retracing=True)

    def val_logits():
        return np.concatenate(
            [
                predict(tf.constant(val_feats[i : i + 256], tf.float32)).numpy().ravel()
                for i in range(0, len(val_feats), 256)
            ]
        )

    history = []
    best = {"auc": -1.0}

    def run_stage(name, epochs, lr):
        steps = epochs * math.ceil(len(feats) / batch)
        schedule = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.05)
        top.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
        for epoch in range(epochs):
            order = np.random.default_rng([seed, len(history)]).permutation(len(feats))
            tqdm_cb = progress_callback(f"{name} epoch {epoch + 1}/{epochs}", math.ceil(len(order) / batch))
            h = top.fit(
                feats[order],
                y[order],
                sample_weight=w[order],
                batch_size=batch,
                epochs=1,
                verbose=0,
                shuffle=False,
                callbacks=[tqdm_cb],
            )
            logits = val_logits()
            auc = float(roc_auc_score(y_val, logits))
            history.append(
                {"stage": name, "epoch": epoch + 1, "train_loss": float(h.history["loss"][-1]), "val_auc": auc}
            )
            log.info("%s epoch %d: loss %.4f, val AUC %.4f", name, epoch + 1, h.history["loss"][-1], auc)
            if auc > best["auc"]:
                best.update(auc=auc, weights=top.get_weights(), where=f"{name} epoch {epoch + 1}")

    top_backbone.trainable = False
    if epochs_head:
        run_stage("head", epochs_head, 1e-3)
    top_backbone.trainable = True
    for layer in top_backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    run_stage("fine-tune", epochs_finetune, lr_finetune)
    top.set_weights(best["weights"])
    minutes = (time.time() - started) / 60
    meta = BundleMetadata(
        name=out.name,
        version=version,
        input_size=input_size,
        face_margin=margin,
        calibration=Calibration(),
        thresholds=Thresholds(),
        training={
            "dataset": "shared/datasets/faces (train split; val for epoch, calibration and thresholds)",
            "train_images": len(train_samples),
            "val_images": len(val_samples),
            "train_by_source": {
                f"{k[1]}/{'fake' if k[0] else 'real'}": v
                for k, v in sorted(Counter((s.label, s.source) for s in train_samples).items())
            },
            "self_blended_pseudo_fakes": int(len(real_idx) * self_blend_copies),
            "train_face_found_rate": float(train_found.mean()),
            "val_face_found_rate": float(val_found.mean()),
            "val_auc": best["auc"],
            "chosen": best["where"],
            "history": history,
            "recipe": {
                "augment_copies": augment_copies,
                "epochs_head": epochs_head,
                "epochs_finetune": epochs_finetune,
                "batch": batch,
                "seed": seed,
                "first_trained_block": first_trained_block,
                "init_from": None if init_from is None else f"{init_from.name} {init_meta.version} (its weights)",
                "self_blend_copies": self_blend_copies,
                **({"self_blend_share": self_blend_share} if self_blend_copies else {}),
                "lr_finetune": lr_finetune,
                "input_size": input_size,
            },
            "minutes": round(minutes, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    if init_from is not None:
        meta.training.update(stage_lineage(init_meta, meta.training["minutes"]))
    write_bundle(out, model, meta)
    return calibrate_bundle(out, dataset, max_far, uncertain_band, val_samples)


def stage_lineage(earlier: BundleMetadata, minutes: float) -> dict:
    """What a continued run started from: the earlier stage's summary (nested for each stage) and the total time."""
    t = earlier.training
    keep = ("chosen", "history", "minutes", "recipe", "val_auc", "previous_stage")
    previous = {"version": earlier.version, **{k: t[k] for k in keep if k in t}}
    return {
        "previous_stage": previous,
        "minutes_total": round(minutes + t.get("minutes_total", t.get("minutes", 0.0)), 1),
    }


def calibrate_bundle(
    path: Path, dataset: Path, max_far: float = 0.03, band_logit: float = 1.0, samples: list[Sample] | None = None
) -> BundleMetadata:
    """Fit the calibration and choose the thresholds on ``val`` through the serving path; rewrite the metadata.

    Serving judges an image by its most suspicious face, so the calibration is
    fitted on each image's largest face logit, exactly as the detector computes it.
    """
    from .evaluation import prepared_batches
    from .predictor import Detector

    samples = samples if samples is not None else read_manifest(dataset, "val")
    detector = Detector(path)
    rows = [(s.label, s.source, float(logits.max())) for s, _, logits in prepared_batches(detector, samples)]
    labels = np.array([r[0] for r in rows])
    sources = np.array([r[1] for r in rows])
    logits = np.array([r[2] for r in rows])
    calibration = fit_platt(logits, labels)
    probs = np.array([calibration.probability(z) for z in logits])
    meta = detector.meta
    meta.calibration = calibration
    meta.thresholds = Thresholds.below(choose_threshold(probs, labels, sources, max_far), band_logit)
    meta.training["calibration"] = {
        "split": "val",
        "images": len(rows),
        "method": "Platt scaling of the image's largest face logit",
        "threshold_rule": f"at most {max_far:.1%} of validation reals are called Deepfake, overall and in every "
        "real source with 50 or more images",
        "uncertain_band_logit": band_logit,
    }
    (Path(path) / METADATA_FILE).write_text(meta.to_json())
    return meta


def progress_callback(desc: str, total: int):
    """A Keras callback that shows a progress bar for one epoch."""
    import keras

    class ProgressBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total, desc=desc, unit="batch")

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)
            if logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

        def on_train_end(self, logs=None):
            self.bar.close()

    return ProgressBar()


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset",
        type=Path,
        default=Path(__file__).resolve().parents[3] / "shared/datasets/faces",
        help="dataset root with manifest.csv (default: ../shared/datasets/faces)",
    )
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--model-version", help="version string stored in the bundle (required when training)")
    p.add_argument("--epochs-head", type=int, default=1)
    p.add_argument("--epochs-finetune", type=int, default=3)
    p.add_argument("--augment-copies", type=int, default=3)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE, help="face crop size in pixels")
    p.add_argument(
        "--first-trained-block",
        type=int,
        default=FIRST_TRAINED_BLOCK,
        help="MBConv blocks before this one (0-15) stay frozen and their output is cached",
    )
    p.add_argument("--lr-finetune", type=float, default=3e-4)
    p.add_argument(
        "--self-blend-copies",
        type=int,
        default=0,
        help="add this many self-blended pseudo-fakes of every real training crop (0: none)",
    )
    p.add_argument(
        "--self-blend-share",
        type=float,
        default=0.2,
        help="share of the fake class's training weight carried by the self-blended pseudo-fakes",
    )
    p.add_argument("--init-from", type=Path, default=None, help="start from this bundle's weights instead of ImageNet")
    p.add_argument(
        "--calibrate-only",
        action="store_true",
        help="keep the weights of --out; refit its calibration and thresholds on val",
    )
    p.add_argument(
        "--max-false-accusation",
        type=float,
        default=0.03,
        help="largest share of val reals, overall and per source, called Deepfake at the threshold",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="keep face crops here between runs")
    p.add_argument("--limit", type=int, default=None, help="train on a random subset (smoke runs)")
    return p


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.calibrate_only and not args.model_version:
        parser.error("--model-version is required when training")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.calibrate_only:
        meta = calibrate_bundle(args.out, args.dataset, args.max_false_accusation)
        print(
            json.dumps(
                {"bundle": str(args.out), "calibration": vars(meta.calibration), "thresholds": vars(meta.thresholds)},
                indent=2,
            )
        )
        return
    meta = train(
        args.dataset,
        args.out,
        version=args.model_version,
        epochs_head=args.epochs_head,
        epochs_finetune=args.epochs_finetune,
        augment_copies=args.augment_copies,
        seed=args.seed,
        max_far=args.max_false_accusation,
        cache_dir=args.cache_dir,
        limit=args.limit,
        input_size=args.input_size,
        first_trained_block=args.first_trained_block,
        lr_finetune=args.lr_finetune,
        init_from=args.init_from,
        self_blend_copies=args.self_blend_copies,
        self_blend_share=args.self_blend_share,
    )
    engine = export_bundle(args.out, args.dataset)  # the fast serving form, checked against the new weights
    print(
        json.dumps(
            {
                "bundle": str(args.out),
                "val_auc": meta.training["val_auc"],
                "thresholds": vars(meta.thresholds),
                "minutes": meta.training["minutes"],
                "litert_max_probability_difference": engine["check"]["max_probability_difference"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
