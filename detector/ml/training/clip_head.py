"""Train a CLIP member: a logistic head on frozen CLIP ViT-B/16 features of the face crop (:mod:`.clip`).

Every image's main face is cut as the networks cut it (224 px, a margin of 0.2: the crop cache of
:mod:`.crops`), encoded once, and the embedding kept in ``--cache-dir``; a head costs seconds on top, so it can be
fitted again for every out-of-domain fold (:mod:`.folds`). Self-blended copies of real crops (:mod:`.augment`) join
the fakes, as in the networks' recipe; both classes weigh the same within each dataset, sources by the square root
of their size (:mod:`.weighting`). The calibration and both thresholds are fitted on val through the serving path,
as for every bundle.

    python -m detector.ml.training.clip_head --dataset ../shared/datasets/faces --dataset .cache/datasets/ffpp \\
        --dataset .cache/datasets/wild-reals --out ml_models/clip-faces-v1 --model-version 3.1.0
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..inference.bundle import BundleMetadata, Calibration, Thresholds, sha256_file
from ..inference.clip import (
    EMBEDDING_SIZE,
    ENCODER_DISTRIBUTION,
    ENCODER_FILE,
    ENCODER_SHA256,
    ENCODER_VERSION,
    HEAD_FILE,
    ClipHead,
    shared_encoder,
)
from ..inference.preprocessing import DEFAULT_MARGIN, PREPROCESSING_VERSION
from ..measurement.dataset import Sample, counts_by_source, read_manifest
from .recipe import dataset_name
from .weighting import add_pseudo_fakes, balanced_weights

log = logging.getLogger(__name__)
CROP_SIZE = 224
SEED = 2026


def _file_part(name: str) -> str:
    return name.replace("/", "_").replace(".", "")


def embed_crops(crops: np.ndarray, desc: str = "CLIP") -> np.ndarray:
    from tqdm import tqdm

    encoder = shared_encoder(num_threads=os.cpu_count())
    out = np.empty((len(crops), EMBEDDING_SIZE), np.float32)
    for start in tqdm(range(0, len(crops), 64), desc=desc, unit="batch"):
        out[start : start + 64] = encoder.embed(crops[start : start + 64])
    return out


def cached_embeddings(samples: list[Sample], cache_dir: Path, name: str, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """The main face's CLIP embedding of every sample, and whether a face was found; kept in ``cache_dir``."""
    from .crops import cached_crops

    path = cache_dir / f"clip-{name}-p{PREPROCESSING_VERSION}-{ENCODER_SHA256[:12]}-{len(samples)}.npz"
    if path.exists():
        data = np.load(path)
        return data["embeddings"], data["found"]
    crops, found = cached_crops(samples, CROP_SIZE, DEFAULT_MARGIN, workers, cache_dir, name)
    embeddings = embed_crops(crops, f"CLIP {name}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, embeddings=embeddings, found=found)
    return embeddings, found


def pseudo_fake_embeddings(
    reals: list[Sample], count: int, cache_dir: Path, name: str, workers: int, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``count`` self-blended copies of real training crops (one each, of reals drawn at random),
    their masks from the face mesh where it is found, and the index in ``reals`` each was made from; kept in
    ``cache_dir``."""
    from .augment import self_blend, training_view
    from .crops import cached_crops, crop_landmarks

    path = cache_dir / f"clip-sbi-{name}-p{PREPROCESSING_VERSION}-{ENCODER_SHA256[:12]}-{count}-{seed}.npz"
    if path.exists():
        data = np.load(path)
        return data["embeddings"], data["made_from"]
    crops, _ = cached_crops(reals, CROP_SIZE, DEFAULT_MARGIN, workers, cache_dir, name)
    chosen = np.sort(np.random.default_rng(seed).choice(len(crops), min(count, len(crops)), replace=False))
    landmarks = crop_landmarks(crops, chosen, workers)
    blended = np.empty((len(chosen), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for k, i in enumerate(chosen):
        rng = np.random.default_rng([seed, 7, int(i)])
        pixels, mask = self_blend(crops[i], rng, DEFAULT_MARGIN, landmarks.get(int(i)))
        blended[k] = training_view(pixels, mask, rng)[0]
    embeddings = embed_crops(blended, f"CLIP self-blends {name}")
    np.savez(path, embeddings=embeddings, made_from=chosen)
    return embeddings, chosen


@dataclass
class TrainingFeatures:
    """Every training image's main-face embedding (all datasets, no source left out: a fold masks its own), and
    the self-blended copies with the real each was made from."""

    samples: list[Sample]
    embeddings: np.ndarray
    found: np.ndarray
    sbi: np.ndarray
    sbi_sources: np.ndarray

    @classmethod
    def load(cls, datasets, cap, sbi_count, cache_dir: Path, workers: int) -> TrainingFeatures:
        key = "+".join(_file_part(dataset_name(d)) for d in datasets)
        samples = training_set(datasets, (), cap)
        embeddings, found = cached_embeddings(samples, cache_dir, f"{key}-train-cap{cap}", workers)
        reals = [s for s in samples if s.label == 0]
        sbi, made_from = np.empty((0, EMBEDDING_SIZE), np.float32), np.empty(0, int)
        if sbi_count:
            sbi, made_from = pseudo_fake_embeddings(reals, sbi_count, cache_dir, f"{key}-reals-cap{cap}", workers)
        return cls(samples, embeddings, found, sbi, np.array([reals[i].source for i in made_from], dtype=object))

    def rows(self, exclude=(), sbi_share: float = 0.2):
        """Rows, labels and weights for a head that never sees the sources of ``exclude`` (:func:`training_rows`)."""
        keep = np.array([s.source not in exclude for s in self.samples], bool)
        sbi = (
            self.sbi[np.array([source not in exclude for source in self.sbi_sources], bool)] if len(self.sbi) else None
        )
        samples = [s for s, k in zip(self.samples, keep, strict=True) if k]
        return training_rows(samples, self.embeddings[keep], self.found[keep], sbi, sbi_share)


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float = 1.0) -> ClipHead:
    """Logistic regression of the label on the normalised embeddings, each row weighed by ``w``."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=2000).fit(x, y, sample_weight=w / w.mean())
    return ClipHead(lr.coef_[0], float(lr.intercept_[0]))


def training_rows(samples, embeddings, found, sbi: np.ndarray | None, sbi_share: float):
    """Rows, labels and weights for the head: every sample whose face was found (the centre square of a sample
    without one teaches nothing about faces), then the self-blends, carrying ``sbi_share`` of the fakes' weight."""
    keep = np.flatnonzero(found)
    kept = [samples[i] for i in keep]
    x = embeddings[keep]
    y = np.array([s.label for s in kept], np.float32)
    w = balanced_weights(kept)
    if sbi is not None and len(sbi):
        y, w = add_pseudo_fakes(y, w, len(sbi), sbi_share)
        x = np.concatenate([x, sbi])
    return x, y, w


def capped(samples: list[Sample], cap: int | None, seed: int = SEED) -> list[Sample]:
    """At most ``cap`` samples of each source and label (drawn at random, the same every run): a linear head learns
    from a few thousand faces of a kind as well as from ten thousand, and each face costs an encoder call."""
    if not cap:
        return samples
    rng = np.random.default_rng(seed)
    groups: dict = {}
    for i, s in enumerate(samples):
        groups.setdefault((s.source, s.label), []).append(i)
    kept = set()
    for members in groups.values():
        kept.update(members if len(members) <= cap else rng.choice(members, cap, replace=False).tolist())
    return [s for i, s in enumerate(samples) if i in kept]


def training_set(datasets, exclude=(), cap: int | None = None, split: str = "train") -> list[Sample]:
    samples = [s for root in datasets for s in read_manifest(root, split) if s.source not in exclude]
    return capped(samples, cap)


def write_clip_bundle(out: Path, head: ClipHead, version: str, training: dict) -> BundleMetadata:
    """A bundle of a CLIP head: its weights file (checked by sha256 like a network's) and the metadata that names
    the encoder it reads. Calibration and thresholds are fitted afterwards (:func:`.calibration.calibrate_bundle`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head.save(out / HEAD_FILE, {"input": "CLIP ViT-B/16 image embedding of the face crop, L2-normalised"})
    sha = sha256_file(out / HEAD_FILE)
    meta = BundleMetadata(
        name=out.name,
        version=version,
        input_size=CROP_SIZE,
        face_margin=DEFAULT_MARGIN,
        calibration=Calibration(),
        thresholds=Thresholds(),
        weights_file=HEAD_FILE,
        weights_sha256=sha,
        engines={
            "clip": {
                "file": HEAD_FILE,
                "sha256": sha,
                "format": "logistic regression on the L2-normalised CLIP ViT-B/16 image embedding (512)",
                "encoder": {
                    "from": f"{ENCODER_DISTRIBUTION}=={ENCODER_VERSION} (its file only)",
                    "file": ENCODER_FILE,
                    "sha256": ENCODER_SHA256,
                    "runtime": "onnxruntime, one face per call (its INT8 graph quantises activations per call)",
                },
            }
        },
        test_time_flip=False,
        training=training,
    )
    (out / "metadata.json").write_text(meta.to_json())
    return meta


def train(args) -> BundleMetadata:
    from .calibration import calibrate_bundle

    started = time.time()
    workers = args.workers or os.cpu_count() or 1
    datasets = [Path(d) for d in args.dataset]
    features = TrainingFeatures.load(datasets, args.per_source_limit, args.self_blend_copies, args.cache_dir, workers)
    x, y, w = features.rows(args.exclude_source, args.self_blend_share)
    samples = [s for s in features.samples if s.source not in args.exclude_source]
    found = features.found[[s.source not in args.exclude_source for s in features.samples]]
    head = fit_head(x, y, w, args.c)
    out = Path(args.out)
    meta = write_clip_bundle(
        out,
        head,
        args.model_version,
        {
            "title": args.title,
            "kind": "clip-head",
            "dataset": " + ".join(dataset_name(d) for d in datasets) + " (train split; val for calibration)",
            "excluded_sources": sorted(args.exclude_source),
            "train_images": int(found.sum()),
            "train_by_source": counts_by_source([s for s, f in zip(samples, found, strict=True) if f]),
            "face_found_rate": float(found.mean()),
            "per_source_limit": args.per_source_limit,
            "self_blended_pseudo_fakes": int(len(x) - found.sum()),
            "self_blend_share": args.self_blend_share,
            "c": args.c,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        },
    )
    val = training_set(datasets, args.exclude_source, args.per_source_limit // 2, "val")
    calibrate_bundle(out, val)
    from ..inference.bundle import read_metadata

    meta = read_metadata(out)
    meta.training["minutes"] = round((time.time() - started) / 60, 1)
    (out / "metadata.json").write_text(meta.to_json())
    log.info("CLIP head %s %s written to %s", meta.name, meta.version, out)
    return meta


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--dataset", action="append", required=True, help="dataset root with manifest.csv; repeat")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--model-version", required=True)
    p.add_argument("--title", default="CLIP features, linear head")
    p.add_argument("--exclude-source", action="append", default=[], help="a source left out of train and val")
    p.add_argument("--per-source-limit", type=int, default=1500, help="training images of one source and label at most")
    p.add_argument("--self-blend-copies", type=int, default=2000, help="self-blended pseudo-fakes (0: none)")
    p.add_argument("--self-blend-share", type=float, default=0.2, help="their share of the fakes' weight")
    p.add_argument("--c", type=float, default=1.0, help="inverse regularisation of the logistic head")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache/crops"))
    p.add_argument("--workers", type=int, default=None)
    return p


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train(add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args(argv))


if __name__ == "__main__":
    main()
