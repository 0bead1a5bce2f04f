"""Train the deepfake classifier on the face dataset and write a model bundle.

Recipe (sized for 2 CPU cores, one run from the ImageNet weights): crop every
image's main face with the serving preprocessing; find the DFDC swaps whose
real frame is in the dataset too and where the swap changed it
(:mod:`.pairs`); make augmented copies of the training crops (mirror,
down-and-up scaling, blur, JPEG re-compression, for both classes alike), plus
self-blended pseudo-fakes of the real crops, each with the mask of what was
changed; run them once through the frozen lower blocks
(batch norm folded, so twice as fast) and cache the result; fine-tune the
upper blocks and the head on the cache, with a mask head beside the
classifier that learns where a face was changed; keep the epoch with the best
validation AUC; fit the calibration and the thresholds on ``val``.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .augment import mask_target, self_blend, training_view
from .bundle import (
    METADATA_FILE,
    BundleMetadata,
    Calibration,
    Thresholds,
    load_keras_model,
    read_metadata,
    write_bundle,
)
from .dataset import Sample, read_manifest
from .export import export_bundle
from .model import FIRST_TRAINED_BLOCK, build_classifier, folded_copy, split_classifier
from .pairs import FramePair, frame_pairs
from .preprocessing import DEFAULT_INPUT_SIZE, DEFAULT_MARGIN, PREPROCESSING_VERSION, FaceFinder, decode_image, prepare

log = logging.getLogger(__name__)

# Random streams of the two kinds of copies, kept apart so that adding one kind changes no other.
STREAMS = {"plain": 0, "self_blend": 7}
# Fakes made whole by a generator: every pixel of the crop is synthetic.
GENERATED_KINDS = ("gan", "diffusion")
FEATURE_STRIDE = 32  # the backbone's output map is input_size / 32 on a side

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


@dataclass
class CopyMaker:
    """Makes the augmented training copies of the crops, each with its mask target.

    A copy is ``(kind, index, copy)``: ``plain`` is crop ``index`` itself,
    ``self_blend`` a pseudo-fake made from real crop ``index``. The target says which share of
    each cell of the ``grid`` x ``grid`` output map was changed; its weight is 0
    where that is unknown (a swap without its real frame).
    """

    crops: np.ndarray
    labels: np.ndarray
    kinds: np.ndarray
    pairs: dict[int, FramePair]
    seed: int
    margin: float
    strength: float
    grid: int

    def plain_mask(self, i: int) -> tuple[np.ndarray, float]:
        size = self.crops.shape[1]
        if self.labels[i] == 0:
            return np.zeros((size, size), np.float32), 1.0
        if i in self.pairs:
            return self.pairs[i].changed, 1.0
        if self.kinds[i] in GENERATED_KINDS:
            return np.ones((size, size), np.float32), 1.0
        return np.zeros((size, size), np.float32), 0.0

    def __call__(self, job: tuple[str, int, int]):
        kind, i, copy = job
        rng = np.random.default_rng([self.seed, STREAMS[kind], copy, i])
        if kind == "plain":
            pixels = self.crops[i]
            mask, weight = self.plain_mask(i)
        else:
            (pixels, mask), weight = self_blend(self.crops[i], rng, self.margin), 1.0
        pixels, mask = training_view(pixels, mask, rng, self.strength)
        return pixels, mask_target(mask, self.grid).astype(np.float16), np.float32(weight)


_maker: CopyMaker | None = None


def _set_maker(maker: CopyMaker) -> None:
    global _maker
    _maker = maker


def _make_copy(job):
    return _maker(job)


def inference(net):
    """``net`` in inference mode as a traced TensorFlow function (batch norm and dropout frozen)."""
    import tensorflow as tf

    return tf.function(lambda x: net(x, training=False), reduce_retracing=True)


def cached_features(bottom, jobs: list, maker: CopyMaker, workers: int, batch: int = 128):
    """Every copy run once through the frozen lower blocks: (features float16, mask targets, mask weights).

    The copies are made in worker processes while this one runs the network.
    """
    import tensorflow as tf

    run = inference(bottom)
    feats = None
    targets = np.empty((len(jobs), maker.grid, maker.grid), np.float16)
    weights = np.empty(len(jobs), np.float32)
    pending = []

    def flush(end):
        nonlocal feats
        f = run(tf.constant(np.stack(pending), tf.float32)).numpy().astype(np.float16)
        if feats is None:
            feats = np.empty((len(jobs), *f.shape[1:]), np.float16)
        feats[end - len(pending) : end] = f
        pending.clear()

    with Pool(max(1, workers - 1), initializer=_set_maker, initargs=(maker,)) as pool:
        made = pool.imap(_make_copy, jobs, chunksize=32)
        for k, (pixels, target, weight) in enumerate(tqdm(made, total=len(jobs), desc="copies", unit="img")):
            pending.append(pixels)
            targets[k], weights[k] = target, weight
            if len(pending) == batch:
                flush(k + 1)
        if pending:
            flush(len(jobs))
    return feats, targets, weights


def extract_features(bottom, crops: np.ndarray, batch: int = 128) -> np.ndarray:
    import tensorflow as tf

    run = inference(bottom)
    return np.concatenate(
        [
            run(tf.constant(crops[i : i + batch], tf.float32)).numpy().astype(np.float16)
            for i in range(0, len(crops), batch)
        ]
    )


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


def fit_calibration(logits: np.ndarray, labels: np.ndarray) -> Calibration:
    """Beta calibration of the logits (a logistic regression on ln s and -ln(1 - s)); Platt where that is not monotone.

    Platt scaling has one slope for the whole range; on the val scores of model 1.3.0 it
    left the 20-50 % bins holding 36-53 % fakes, and a slope for each end fitted them better
    (cross-validated on val: expected calibration error 0.025 -> 0.012).
    """
    from sklearn.linear_model import LogisticRegression

    logits = np.asarray(logits, float)
    log_s, log_1ms = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(np.c_[log_s, -log_1ms], labels)
    a, b = (float(v) for v in lr.coef_[0])
    if a <= 0 or b <= 0:  # a higher logit must never mean a lower probability of a fake
        return fit_platt(logits, labels)
    return Calibration(a, float(lr.intercept_[0]), upper_slope=b)


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


def copy_jobs(labels: np.ndarray, augment_copies: int, self_blend_copies: int):
    """The training copies to make: every crop ``augment_copies`` times, then the self-blended fakes."""
    reals = np.flatnonzero(labels == 0)
    jobs = [("plain", i, c) for c in range(augment_copies) for i in range(len(labels))]
    jobs += [("self_blend", int(i), c) for c in range(self_blend_copies) for i in reals]
    return jobs


def copy_labels_and_weights(samples, jobs, self_blend_share: float):
    """Labels and sample weights of the copies, in :func:`copy_jobs`' order.

    Plain copies weigh as :func:`balanced_weights` says; the self-blended fakes
    carry ``self_blend_share`` of the fake class's weight.
    """
    kinds = [kind for kind, _, _ in jobs]
    plain = kinds.count("plain")
    if kinds != ["plain"] * plain + ["self_blend"] * (len(kinds) - plain):
        raise ValueError("copies must come plain first, then self-blended")
    y = np.array([samples[i].label for _, i, _ in jobs[:plain]], np.float32)
    w = balanced_weights(samples)[[i for _, i, _ in jobs[:plain]]]
    if len(kinds) > plain:
        y, w = add_pseudo_fakes(y, w, len(kinds) - plain, self_blend_share)
    return y, w


class MaskedTrainer:
    """Fine-tunes the upper blocks and the head on cached features, with a mask head beside the classifier.

    Loss: the weighted binary cross-entropy of the fake logit, plus
    ``mask_weight`` times the per-cell cross-entropy of the mask head against
    the share of each cell that was changed. The mask head exists only here:
    the bundle keeps the classifier alone, so serving is unchanged.
    """

    def __init__(self, top, top_backbone, *, lr: float, steps: int, mask_weight: float, bf16: bool):
        import keras
        from keras import layers

        self.top, self.top_backbone, self.mask_weight, self.bf16 = top, top_backbone, mask_weight, bf16
        for layer in top_backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False  # small data: keep ImageNet statistics
        features = keras.Input(top.input_shape[1:], name="features")
        fmap = top_backbone(features)
        logit = top.get_layer("fake_logit")(top.get_layer("dropout")(top.get_layer("pool")(fmap)))
        mask = layers.Conv2D(1, 1, name="mask_logit", dtype="float32")(layers.Dropout(0.1, name="mask_dropout")(fmap))
        self.model = keras.Model(features, [logit, mask])
        warmup = min(200, steps // 10)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, max(1, steps - warmup), alpha=0.02, warmup_target=lr, warmup_steps=warmup
        )
        self.optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01)

    def _set_precision(self, policy: str) -> None:
        """1x1 convolutions in bfloat16 run on the CPU's matrix units (AMX); the rest stays float32."""
        import keras

        for layer in self.top_backbone.layers:
            if type(layer) is keras.layers.Conv2D:
                layer.dtype_policy = policy

    def fit(self, feats, y, w, targets, mask_weights, *, epochs: int, batch: int, seed: int, validate):
        """Train for ``epochs``; after each, ``validate()`` gives the val AUC; the best epoch's weights stay."""
        import tensorflow as tf

        bce = tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
        model, optimizer, mask_weight = self.model, self.optimizer, self.mask_weight
        cells = float(targets.shape[1] * targets.shape[2])

        @tf.function(reduce_retracing=True)
        def step(x, yb, wb, tb, mwb):
            with tf.GradientTape() as tape:
                logit, mask = model(x, training=True)
                logit, mask = tf.cast(logit, tf.float32), tf.cast(mask, tf.float32)[..., 0]
                cls = tf.reduce_sum(wb * bce(yb[:, None], logit)) / tf.reduce_sum(wb)
                per_cell = tf.nn.sigmoid_cross_entropy_with_logits(tb, mask)
                seg = tf.reduce_sum(mwb[:, None, None] * per_cell) / (tf.reduce_sum(mwb) * cells + 1e-6)
                loss = cls + mask_weight * seg
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return cls, seg

        history, best = [], {"auc": -1.0}
        if self.bf16:
            self._set_precision("mixed_bfloat16")
        try:
            for epoch in range(epochs):
                order = np.random.default_rng([seed, 5, epoch]).permutation(len(feats))
                sums = np.zeros(2)
                bar = tqdm(range(0, len(order), batch), desc=f"fine-tune epoch {epoch + 1}/{epochs}", unit="batch")
                for n, start in enumerate(bar, 1):
                    ids = np.sort(order[start : start + batch])
                    cls, seg = step(
                        tf.constant(feats[ids], tf.float32),
                        tf.constant(y[ids]),
                        tf.constant(w[ids]),
                        tf.constant(targets[ids], tf.float32),
                        tf.constant(mask_weights[ids]),
                    )
                    sums += (float(cls), float(seg))
                    if n % 20 == 0:
                        bar.set_postfix(loss=f"{sums[0] / n:.4f}", mask=f"{sums[1] / n:.4f}")
                auc = validate()
                loss, mask_loss = sums / max(1, len(bar))
                history.append(
                    {
                        "stage": "fine-tune",
                        "epoch": epoch + 1,
                        "train_loss": loss,
                        "mask_loss": mask_loss,
                        "val_auc": auc,
                    }
                )
                log.info("epoch %d: loss %.4f, mask loss %.4f, val AUC %.4f", epoch + 1, loss, mask_loss, auc)
                if auc > best["auc"]:
                    best.update(auc=auc, weights=self.top.get_weights(), where=f"fine-tune epoch {epoch + 1}")
        finally:
            self._set_precision("float32")
        self.top.set_weights(best["weights"])
        return history, best


def train(
    dataset: Path,
    out: Path,
    *,
    version: str,
    epochs: int = 3,
    augment_copies: int = 3,
    augment_strength: float = 1.0,
    self_blend_copies: int = 1,
    self_blend_share: float = 0.2,
    mask_weight: float = 1.0,
    batch: int = 64,
    lr: float = 3e-4,
    seed: int = 2026,
    max_far: float = 0.03,
    uncertain_band: float = 1.0,
    input_size: int = DEFAULT_INPUT_SIZE,
    margin: float = DEFAULT_MARGIN,
    cache_dir: Path | None = None,
    workers: int | None = None,
    limit: int | None = None,
    first_trained_block: int = FIRST_TRAINED_BLOCK,
    init_from: Path | None = None,
    bf16: bool = False,
    test_time_flip: bool = True,
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
    y_val = np.array([s.label for s in val_samples], np.float32)

    train_crops, train_found = cached_crops(train_samples, input_size, margin, workers, cache_dir, "train")
    val_crops, val_found = cached_crops(val_samples, input_size, margin, workers, cache_dir, "val")
    pairs = frame_pairs(train_samples, input_size, margin, workers) if mask_weight else {}

    if init_from is not None:  # continue from a trained bundle's weights
        init_meta = read_metadata(init_from)
        model = load_keras_model(init_from, init_meta)
    else:
        model = build_classifier(input_size)
    bottom = split_classifier(folded_copy(model), first_trained_block)[0]
    _, top, top_backbone = split_classifier(model, first_trained_block)

    maker = CopyMaker(
        crops=train_crops,
        labels=np.array([s.label for s in train_samples]),
        kinds=np.array([s.kind for s in train_samples]),
        pairs=pairs,
        seed=seed,
        margin=margin,
        strength=augment_strength,
        grid=input_size // FEATURE_STRIDE,
    )
    jobs = copy_jobs(maker.labels, augment_copies, self_blend_copies)
    feats, targets, mask_weights = cached_features(bottom, jobs, maker, workers)
    y, w = copy_labels_and_weights(train_samples, jobs, self_blend_share)
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
        return float(roc_auc_score(y_val, logits))

    trainer = MaskedTrainer(
        top, top_backbone, lr=lr, steps=epochs * math.ceil(len(feats) / batch), mask_weight=mask_weight, bf16=bf16
    )
    history, best = trainer.fit(
        feats, y, w, targets, mask_weights, epochs=epochs, batch=batch, seed=seed, validate=val_auc
    )
    minutes = (time.time() - started) / 60
    counts = Counter(kind for kind, _, _ in jobs)
    meta = BundleMetadata(
        name=out.name,
        version=version,
        input_size=input_size,
        face_margin=margin,
        calibration=Calibration(),
        thresholds=Thresholds(),
        test_time_flip=test_time_flip,
        training={
            "dataset": "shared/datasets/faces (train split; val for epoch, calibration and thresholds)",
            "train_images": len(train_samples),
            "val_images": len(val_samples),
            "train_by_source": {
                f"{k[1]}/{'fake' if k[0] else 'real'}": v
                for k, v in sorted(Counter((s.label, s.source) for s in train_samples).items())
            },
            "self_blended_pseudo_fakes": counts["self_blend"],
            "frame_pairs": len(pairs),
            "train_face_found_rate": float(train_found.mean()),
            "val_face_found_rate": float(val_found.mean()),
            "val_auc": best["auc"],
            "chosen": best["where"],
            "history": history,
            "recipe": {
                "epochs": epochs,
                "augment_copies": augment_copies,
                "augment_strength": augment_strength,
                "self_blend_copies": self_blend_copies,
                "self_blend_share": self_blend_share,
                "mask_weight": mask_weight,
                "batch": batch,
                "lr": lr,
                "seed": seed,
                "first_trained_block": first_trained_block,
                "init_from": None if init_from is None else f"{init_from.name} {init_meta.version} (its weights)",
                "bf16": bf16,
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
    path: Path,
    dataset: Path,
    max_far: float = 0.03,
    band_logit: float = 1.0,
    samples: list[Sample] | None = None,
    *,
    test_time_flip: bool | None = None,
    version: str | None = None,
) -> BundleMetadata:
    """Fit the calibration and choose the thresholds on ``val`` through the serving path; rewrite the metadata.

    Serving judges an image by its most suspicious face, so the calibration is
    fitted on each image's largest face logit, exactly as the detector computes it.
    ``test_time_flip`` (where given) changes how the bundle scores a face before
    the fit; ``version`` renames it, recording the version whose weights it keeps:
    its verdicts change, so it is not the same model for the records.
    """
    from .evaluation import prepared_batches
    from .predictor import Detector

    samples = samples if samples is not None else read_manifest(dataset, "val")
    detector = Detector(path)
    meta = detector.meta  # changed in memory and written once, when the fit is done
    if version and version != meta.version:
        meta.training.setdefault("same_weights_as", meta.version)  # the version that trained these weights
        meta.version = version
    if test_time_flip is not None:
        meta.test_time_flip = test_time_flip  # the detector scores by its meta, so the fit below sees it
    rows = [(s.label, s.source, float(logits.max())) for s, _, logits in prepared_batches(detector, samples)]
    labels = np.array([r[0] for r in rows])
    sources = np.array([r[1] for r in rows])
    logits = np.array([r[2] for r in rows])
    calibration = fit_calibration(logits, labels)
    probs = np.array([calibration.probability(z) for z in logits])
    meta.calibration = calibration
    meta.thresholds = Thresholds.below(choose_threshold(probs, labels, sources, max_far), band_logit)
    meta.training["calibration"] = {
        "split": "val",
        "images": len(rows),
        "method": f"{calibration.method} of the image's largest face logit",
        "face_logit": "mean over the crop and its mirror image" if meta.test_time_flip else "the crop's",
        "threshold_rule": f"at most {max_far:.1%} of validation reals are called Deepfake, overall and in every "
        "real source with 50 or more images",
        "uncertain_band_logit": band_logit,
    }
    (Path(path) / METADATA_FILE).write_text(meta.to_json())
    return meta


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
    p.add_argument("--epochs", type=int, default=3, help="passes over the cached copies")
    p.add_argument("--augment-copies", type=int, default=3, help="augmented copies of every training crop")
    p.add_argument(
        "--augment-strength",
        type=float,
        default=1.0,
        help="scales the chances of down-and-up scaling, blur and JPEG re-compression (1: 50 %%, 30 %%, 70 %%)",
    )
    p.add_argument(
        "--self-blend-copies",
        type=int,
        default=1,
        help="self-blended pseudo-fakes made from every real training crop (0: none)",
    )
    p.add_argument(
        "--self-blend-share",
        type=float,
        default=0.2,
        help="share of the fake class's training weight carried by the self-blended pseudo-fakes",
    )
    p.add_argument(
        "--mask-weight",
        type=float,
        default=1.0,
        help="weight of the mask head's loss (where the face was changed) beside the classifier's (0: none)",
    )
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (AdamW, warm-up, cosine decay)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE, help="face crop size in pixels")
    p.add_argument(
        "--first-trained-block",
        type=int,
        default=FIRST_TRAINED_BLOCK,
        help="MBConv blocks before this one (0-15) stay frozen and their output is cached",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="run the trained 1x1 convolutions in bfloat16 (fast on CPUs with AMX; weights stay float32)",
    )
    p.add_argument("--workers", type=int, default=None, help="processes for face crops and copies (default: all cores)")
    p.add_argument("--init-from", type=Path, default=None, help="start from this bundle's weights instead of ImageNet")
    p.add_argument(
        "--test-time-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score a face as the mean logit of its crop and its mirror image (default: on when training; "
        "with --calibrate-only, as the bundle says)",
    )
    p.add_argument(
        "--calibrate-only",
        action="store_true",
        help="keep the weights of --out; refit its calibration and thresholds on val (with --model-version: "
        "under that version)",
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
        meta = calibrate_bundle(
            args.out,
            args.dataset,
            args.max_false_accusation,
            test_time_flip=args.test_time_flip,
            version=args.model_version,
        )
        print(
            json.dumps(
                {
                    "bundle": str(args.out),
                    "version": meta.version,
                    "test_time_flip": meta.test_time_flip,
                    "calibration": vars(meta.calibration),
                    "thresholds": vars(meta.thresholds),
                },
                indent=2,
            )
        )
        return
    meta = train(
        args.dataset,
        args.out,
        version=args.model_version,
        epochs=args.epochs,
        augment_copies=args.augment_copies,
        augment_strength=args.augment_strength,
        self_blend_copies=args.self_blend_copies,
        self_blend_share=args.self_blend_share,
        mask_weight=args.mask_weight,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        max_far=args.max_false_accusation,
        input_size=args.input_size,
        cache_dir=args.cache_dir,
        workers=args.workers,
        limit=args.limit,
        first_trained_block=args.first_trained_block,
        init_from=args.init_from,
        bf16=args.bf16,
        test_time_flip=args.test_time_flip is not False,
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
