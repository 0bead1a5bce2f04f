"""Does the mirror image earn its cost? Each network's AUC with and without test-time flipping, on held-out images.

A bundle with ``test_time_flip`` judges every face twice (the crop and its mirror image) and averages the two
logits: twice the classifier's cost. This measures, for a single network or for each member of an ensemble
and for the ensemble as a whole, the image-level AUC (the most suspicious face decides, as in serving) from
the crop alone and from the mean of both views, on the same images, with a paired bootstrap interval of the
difference (images resampled, each class on its own). The mirror pays only where that interval lies above 0.

    python -m detector.ml.measurement.mirror ml_models/ensemble-v1 \\
        --dataset ../shared/datasets/faces --split val --out mirror-val.json
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .dataset import Sample, load_samples
from .evaluation import prepared_batches

log = logging.getLogger(__name__)
RESAMPLES = 1000


class _BothViews:
    """What :func:`.evaluation.prepared_batches` asks of a detector, answering with every network's logit of each
    face and of its mirror image: columns (network 1 crop, network 1 mirror, network 2 crop, ...)."""

    def __init__(self, detector):
        self.detector = detector
        self.networks = detector.members or [detector]

    def prepare(self, image):
        return self.detector.prepare(image)

    def views(self, crops):
        return self.detector.views(crops)

    def face_logits(self, views) -> np.ndarray:
        columns = []
        for network in self.networks:
            crops = network._own(views)
            both = network.engine.logits(np.concatenate([crops, crops[:, :, ::-1]]))
            columns += [both[: len(crops)], both[len(crops) :]]
        return np.stack(columns, axis=1)


def view_logits(detector, samples: list[Sample], batch: int = 64, progress: bool = True):
    """(labels, sources, per image a (faces, 2 x networks) array of view logits) of the images with a face."""
    labels, sources, faces = [], [], []
    for sample, prepared, logits in prepared_batches(_BothViews(detector), samples, batch, progress):
        if not prepared.face_found:
            continue  # no verdict either way: the mirror changes nothing there
        boxed = [k for k, c in enumerate(prepared.crops) if c.box]
        labels.append(sample.label)
        sources.append(sample.source)
        faces.append(np.asarray(logits)[boxed])
    return np.array(labels, int), np.array(sources, object), faces


def image_scores(faces: list[np.ndarray], face_logit) -> np.ndarray:
    """Each image's score: ``face_logit`` of its faces' view logits, the most suspicious face deciding."""
    return np.array([float(np.max(face_logit(f))) for f in faces])


def _auc(labels, scores) -> float | None:
    from sklearn.metrics import roc_auc_score

    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def paired_gain(labels, single, mirrored, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """AUC from one view and from both, and the 95 % paired bootstrap interval of ``both - one``."""
    labels, single, mirrored = np.asarray(labels), np.asarray(single, float), np.asarray(mirrored, float)
    one, both = _auc(labels, single), _auc(labels, mirrored)
    record = {"n": int(len(labels)), "fakes": int(labels.sum()), "auc_one_view": one, "auc_with_mirror": both}
    if one is None or both is None:
        return record | {"gain": None, "gain_interval": None, "mirror_pays": False}
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    gains = []
    for _ in range(resamples):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        gains.append(_auc(labels[idx], mirrored[idx]) - _auc(labels[idx], single[idx]))
    lo, hi = (float(v) for v in np.quantile(gains, [0.025, 0.975]))
    return record | {"gain": both - one, "gain_interval": [lo, hi], "mirror_pays": lo > 0}


def measure(detector, samples: list[Sample], progress: bool = True) -> dict:
    """The mirror's gain for every network of ``detector`` and, for an ensemble, for its combined score;
    overall and for each source's fakes against all the reals."""
    labels, sources, faces = view_logits(detector, samples, progress=progress)
    networks = detector.members or [detector]

    def network_views(i):
        return (lambda f: f[:, 2 * i], lambda f: (f[:, 2 * i] + f[:, 2 * i + 1]) / 2)

    scorers = {n.path.name: network_views(i) for i, n in enumerate(networks)}
    if detector.members:
        k = len(networks)
        scorers[detector.path.name] = (
            lambda f: detector.combine(f[:, 0 : 2 * k : 2]),
            lambda f: detector.combine((f[:, 0 : 2 * k : 2] + f[:, 1 : 2 * k : 2]) / 2),
        )
    versions = {n.path.name: n.version for n in networks} | {detector.path.name: detector.version}
    out = {}
    for name, (one_view, both_views) in scorers.items():
        single, mirrored = image_scores(faces, one_view), image_scores(faces, both_views)
        by_source = {}
        for source in sorted(set(sources[labels == 1])):
            keep = (labels == 0) | (sources == source)
            by_source[source] = paired_gain(labels[keep], single[keep], mirrored[keep])
        out[name] = {"version": versions[name], **paired_gain(labels, single, mirrored), "by_source": by_source}
    if detector.members:
        out[detector.path.name]["mirror_where_it_pays"] = _where_it_pays(detector, labels, faces, out)
    return out


def _where_it_pays(detector, labels, faces, measured: dict) -> dict:
    """The ensemble with each member's mirror kept only where it paid for that member, against all mirrors on."""
    k = len(detector.members)
    keep = np.array([measured[m.path.name]["mirror_pays"] for m in detector.members])

    def chosen(f):
        return np.where(keep, (f[:, 0 : 2 * k : 2] + f[:, 1 : 2 * k : 2]) / 2, f[:, 0 : 2 * k : 2])

    every = image_scores(faces, lambda f: detector.combine((f[:, 0 : 2 * k : 2] + f[:, 1 : 2 * k : 2]) / 2))
    compared = paired_gain(labels, every, image_scores(faces, lambda f: detector.combine(chosen(f))))
    return {
        "members_with_mirror": [m.path.name for m, kept in zip(detector.members, keep, strict=True) if kept],
        "networks_run_per_face": int(k + keep.sum()),
        "auc": compared["auc_with_mirror"],
        "auc_all_mirrors": compared["auc_one_view"],
        "difference": compared["gain"],
        "difference_interval": compared["gain_interval"],
    }


def _samples(datasets: list[Path], split: str) -> list[Sample]:
    samples = []
    for root in datasets:
        samples += load_samples(root, split)
    counts = defaultdict(int)
    for s in samples:
        counts[s.label] += 1
    log.info("%d images (%d fake, %d real) from %s, split %s", len(samples), counts[1], counts[0], datasets, split)
    return samples


def main(argv=None) -> None:
    from ..inference.predictor import Detector

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--dataset", type=Path, action="append", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, help="where to write the figures as JSON (else printed)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    detector = Detector(args.bundle, num_threads=args.threads)
    result = {
        "bundle": str(args.bundle),
        "datasets": [str(d) for d in args.dataset],
        "split": args.split,
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "resamples": RESAMPLES,
        "networks": measure(detector, _samples(args.dataset, args.split)),
    }
    for name, r in result["networks"].items():
        lo, hi = r["gain_interval"] or (float("nan"), float("nan"))
        print(
            f"{name} {r['version']}: AUC {r['auc_one_view']:.4f} one view, {r['auc_with_mirror']:.4f} with the mirror; "
            f"gain {r['gain']:+.4f} [{lo:+.4f}, {hi:+.4f}] -> {'keep' if r['mirror_pays'] else 'drop'} the mirror"
        )
    for name, r in result["networks"].items():
        if "mirror_where_it_pays" in r:
            w = r["mirror_where_it_pays"]
            lo, hi = w["difference_interval"] or (float("nan"), float("nan"))
            print(
                f"{name} with the mirror only for {', '.join(w['members_with_mirror']) or 'no member'} "
                f"({w['networks_run_per_face']} network runs per face): AUC {w['auc']:.4f} against "
                f"{w['auc_all_mirrors']:.4f} with every mirror, "
                f"difference {w['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
