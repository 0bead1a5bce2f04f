"""Honest measurement: per-source AUC, detection and false-accusation rates."""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..inference.preprocessing import ImageDecodeError, decode_image
from ..labels import LABEL_FAKE, LABEL_NO_FACE, LABEL_REAL, LABEL_UNCERTAIN
from .dataset import Sample

log = logging.getLogger(__name__)
METRIC_KEYS = (
    "n",
    "auc",
    "accuracy",
    "tpr_at_fpr_1",
    "tpr_at_fpr_5",
    "detection_rate",
    "false_accusation_rate",
    "uncertain_rate",
    "face_found_rate",
)
CALIBRATION_BINS = 10


@dataclass
class Scores:
    labels: np.ndarray  # 1 fake, 0 real
    probs: np.ndarray  # calibrated fake probability of the image
    verdicts: np.ndarray  # Real / Deepfake / Uncertain
    face_found: np.ndarray
    sources: np.ndarray
    unreadable: list[str]


def recompressed(image: Image.Image, quality: int, scale: float = 1.0) -> Image.Image:
    """``image`` as a photo looks after a messaging app or a social network has passed it on.

    Scaled by ``scale`` (Lanczos) where that is not 1, which moves the old 8x8 JPEG grid,
    then encoded as JPEG at ``quality`` and decoded again: every image comes out with the same
    compression, whatever it had before, so compression cannot tell the sources apart.
    """
    if not 0 < scale <= 1:
        raise ValueError("scale must be in (0, 1]")
    if scale != 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return decode_image(buffer.getvalue())


def prepared_batches(
    detector,
    samples: list[Sample],
    batch: int = 64,
    progress: bool = True,
    unreadable: list | None = None,
    transform: Callable[[Image.Image], Image.Image] | None = None,
):
    """Yield (sample, prepared image, raw face logits), classifying the faces of many images per call.

    ``transform`` (e.g. :func:`recompressed`) changes each decoded image first.

    A background thread decodes and finds the faces of the next chunk while the
    current one is classified, so both cores stay busy (both runtimes release the GIL).
    """
    bar = tqdm(total=len(samples), desc="evaluate", unit="img", disable=not progress)

    def prepare_chunk(chunk):
        ready, problems = [], []
        for s in chunk:
            try:
                image = decode_image(str(s.path))
                ready.append((s, detector.prepare(transform(image) if transform else image)))
            except ImageDecodeError as exc:
                problems.append(f"{s.path}: {exc}")
        return ready, problems

    chunks = [samples[i : i + batch] for i in range(0, len(samples), batch)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
        pending = pool.submit(prepare_chunk, chunks[0]) if chunks else None
        for k in range(len(chunks)):
            ready, problems = pending.result()
            pending = pool.submit(prepare_chunk, chunks[k + 1]) if k + 1 < len(chunks) else None
            if unreadable is not None:
                unreadable.extend(problems)
            if ready:
                logits = detector.face_logits(detector.views([c for _, p in ready for c in p.crops]))
                offset = 0
                for s, p in ready:
                    yield s, p, logits[offset : offset + len(p.crops)]
                    offset += len(p.crops)
            bar.update(len(chunks[k]))
    bar.close()


def score_samples(
    detector,
    samples: list[Sample],
    batch: int = 64,
    progress: bool = True,
    transform: Callable[[Image.Image], Image.Image] | None = None,
) -> Scores:
    """Run the serving path on every sample (``transform`` changes each image first); keep what the metrics need."""
    labels, probs, verdicts, found, sources, unreadable = [], [], [], [], [], []
    for s, prepared, logits in prepared_batches(detector, samples, batch, progress, unreadable, transform):
        v = detector.verdict_for(prepared, detector.calibrated(logits))
        labels.append(s.label)
        probs.append(v.fake_probability)
        verdicts.append(v.label)
        found.append(v.face_found)
        sources.append(s.source)
    return Scores(
        np.array(labels, int),
        np.array(probs, float),
        np.array(verdicts, object),
        np.array(found, bool),
        np.array(sources, object),
        unreadable,
    )


def _rate(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def metrics(labels, probs, verdicts, found, threshold: float) -> dict:
    """The metric set for one group of images; what cannot be computed is None."""
    from sklearn.metrics import roc_auc_score, roc_curve

    both = len(set(labels.tolist())) == 2
    out = {"n": int(len(labels)), "auc": None, "tpr_at_fpr_1": None, "tpr_at_fpr_5": None}
    if both:
        out["auc"] = float(roc_auc_score(labels, probs))
        fpr, tpr, _ = roc_curve(labels, probs)
        out["tpr_at_fpr_1"] = float(tpr[fpr <= 0.01].max())
        out["tpr_at_fpr_5"] = float(tpr[fpr <= 0.05].max())
    out["accuracy"] = _rate((probs >= threshold) == (labels == 1))
    out["detection_rate"] = _rate(verdicts[labels == 1] == LABEL_FAKE)
    out["false_accusation_rate"] = _rate(verdicts[labels == 0] == LABEL_FAKE)
    out["uncertain_rate"] = _rate(verdicts == LABEL_UNCERTAIN)
    out["face_found_rate"] = _rate(found)
    return {k: out[k] for k in METRIC_KEYS}


def intervals(labels, probs, verdicts, confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> dict:
    """How far each figure of a group could be off by chance: counts and ``confidence`` intervals.

    For the detection and false-accusation rates, the count behind the rate (``k`` of ``n``)
    and its Wilson score interval; for the AUC (where both classes are present), a percentile
    bootstrap over the group's images, with a fixed seed so a report can be reproduced.
    A rate or AUC that cannot be computed is None.
    """
    from scipy.stats import binomtest
    from sklearn.metrics import roc_auc_score

    def rate(hits: np.ndarray) -> dict | None:
        if not hits.size:
            return None
        k, n = int(hits.sum()), int(hits.size)
        ci = binomtest(k, n).proportion_ci(confidence, method="wilson")
        return {"k": k, "n": n, "low": float(ci.low), "high": float(ci.high)}

    out = {
        "detection_rate": rate(verdicts[labels == 1] == LABEL_FAKE),
        "false_accusation_rate": rate(verdicts[labels == 0] == LABEL_FAKE),
        "auc": None,
    }
    if len(set(labels.tolist())) == 2:
        rng = np.random.default_rng(seed)
        aucs = []
        for _ in range(resamples):
            pick = rng.integers(0, len(labels), len(labels))
            if len(set(labels[pick].tolist())) == 2:
                aucs.append(roc_auc_score(labels[pick], probs[pick]))
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(aucs, [tail, 100 - tail])
        out["auc"] = {"low": float(low), "high": float(high), "resamples": len(aucs)}
    return out


def calibration(labels, probs, bins: int = CALIBRATION_BINS) -> dict | None:
    """Does the probability mean what it says? Brier score, expected calibration error, reliability table.

    The reliability table splits [0, 1] into ``bins`` equal-width bins of the fake
    probability and gives, for each, how many images fell in it, their mean probability
    and the share of them that were fake; the expected calibration error is the
    image-weighted mean gap between those two. ``fake_share`` is the share of fakes
    among all the images: a probability is calibrated for that mix of fakes and reals.
    """
    labels, probs = np.asarray(labels, float), np.asarray(probs, float)
    if not labels.size:
        return None
    which = np.minimum((probs * bins).astype(int), bins - 1)
    table, gap = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        mean_p = float(probs[inside].mean()) if n else None
        share = float(labels[inside].mean()) if n else None
        if n:
            gap += n * abs(mean_p - share)
        table.append({"from": b / bins, "to": (b + 1) / bins, "n": n, "mean_probability": mean_p, "fake_share": share})
    return {
        "n": int(labels.size),
        "fake_share": float(labels.mean()),
        "brier": float(np.mean((probs - labels) ** 2)),
        "ece": gap / labels.size,
        "bins": table,
    }


def verdict_shares(labels, verdicts) -> dict:
    """For the reals and for the fakes of a group, the share given each verdict (None where a class is absent).

    The fakes' ``Real`` share is the false reassurance: fakes the platform told its user were real.
    """
    out = {}
    for name, value in (("reals", 0), ("fakes", 1)):
        mine = verdicts[labels == value]
        out[name] = {
            v: (_rate(mine == v) if mine.size else None)
            for v in (LABEL_REAL, LABEL_UNCERTAIN, LABEL_FAKE, LABEL_NO_FACE)
        }
    return out


def report(scores: Scores, threshold: float, model_version: str) -> dict:
    """``{"model", "overall", "by_source", "against_reals", "calibration", "verdicts", "intervals"}``, as
    ``evaluate_detector --json``.

    ``overall`` and ``by_source`` hold the metric set of ``METRIC_KEYS``; ``against_reals``
    holds it for each source of fakes alone (a manipulation method) ranked against every
    real image of the set, with the AUC's interval; ``verdicts``
    splits each group's reals and fakes by the verdict they were given,
    ``calibration`` says how far the probability can be taken at its word, and
    ``intervals`` how far the AUC and the rates could be off by chance (:func:`intervals`).
    """
    groups = defaultdict(list)
    for i, s in enumerate(scores.sources):
        groups[s].append(i)
    pick = lambda idx: (scores.labels[idx], scores.probs[idx], scores.verdicts[idx], scores.face_found[idx])  # noqa: E731
    everything = np.arange(len(scores.labels))
    by_source = {name: np.array(idx) for name, idx in sorted(groups.items())}
    reals = np.flatnonzero(scores.labels == 0)
    # A source of fakes alone has no AUC of its own: rank its fakes against every real of the set.
    against = {
        name: np.concatenate([idx, reals])
        for name, idx in by_source.items()
        if reals.size and (scores.labels[idx] == 1).all()
    }
    return {
        "model": model_version,
        "overall": metrics(*pick(everything), threshold),
        "by_source": {name: metrics(*pick(idx), threshold) for name, idx in by_source.items()},
        "against_reals": {
            name: {
                **metrics(*pick(idx), threshold),
                "auc_interval": intervals(scores.labels[idx], scores.probs[idx], scores.verdicts[idx])["auc"],
            }
            for name, idx in against.items()
        },
        "calibration": calibration(scores.labels, scores.probs),
        "verdicts": {
            "overall": verdict_shares(scores.labels, scores.verdicts),
            "by_source": {
                name: verdict_shares(scores.labels[idx], scores.verdicts[idx]) for name, idx in by_source.items()
            },
        },
        "intervals": {
            "overall": intervals(scores.labels, scores.probs, scores.verdicts),
            "by_source": {
                name: intervals(scores.labels[idx], scores.probs[idx], scores.verdicts[idx])
                for name, idx in by_source.items()
            },
        },
    }


def fmt_metric(v) -> str:
    """A metric as the tables print it: a count as it is, a rate to three places, a dash where there is none."""
    if v is None:
        return "—"
    return str(v) if isinstance(v, int) else f"{v:.3f}"


def recompressed_note(conditions: dict) -> str:
    """What was done to every image of an ``evaluate_detector --recompress`` run, in words."""
    scaled = f"scaled to {conditions['scale']:.0%} (Lanczos), then " if conditions["scale"] != 1 else ""
    return f"every image {scaled}re-encoded as JPEG at quality {conditions['jpeg_quality']} before analysis"


def format_table(rep: dict) -> str:
    """A fixed-width table of the report, one row per source."""
    cols = METRIC_KEYS
    heads = ("n", "AUC", "acc", "TPR@1%", "TPR@5%", "detected", "false-acc.", "uncertain", "face found")
    rows = [("overall", rep["overall"])] + list(rep["by_source"].items())
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"model {rep['model']}"]
    if rep.get("recompressed"):
        lines.append(recompressed_note(rep["recompressed"]))
    lines.append("source".ljust(width) + "".join(h.rjust(11) for h in heads))
    for name, m in rows:
        lines.append(name.ljust(width) + "".join(fmt_metric(m[c]).rjust(11) for c in cols))
    if rep.get("against_reals"):
        lines.append("each source of fakes against all the reals:")
        for name, m in rep["against_reals"].items():
            ci = m["auc_interval"]
            interval = f" (95 % interval {ci['low']:.3f}-{ci['high']:.3f})" if ci else ""
            lines.append(
                f"  {name}: AUC {fmt_metric(m['auc'])}{interval}, TPR@1% {fmt_metric(m['tpr_at_fpr_1'])}, "
                f"detected {fmt_metric(m['detection_rate'])}"
            )
    cal = rep.get("calibration")
    if cal:
        lines.append(
            f"calibration: Brier score {cal['brier']:.3f}, expected calibration error {cal['ece']:.3f} "
            f"({len(cal['bins'])} bins), for a mix of {cal['fake_share']:.0%} fakes"
        )
    return "\n".join(lines)


def plot_roc(scores: Scores, path, title: str) -> None:
    """ROC curves: overall, and each source against the reals (its own where it has both classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(6, 6))
    curves = [("overall", np.ones(len(scores.labels), bool))]
    reals = scores.labels == 0
    for src in sorted(set(scores.sources.tolist())):
        own = scores.sources == src
        if len(set(scores.labels[own].tolist())) == 2:
            curves.append((f"{src}", own))
        elif (scores.labels[own] == 1).all():
            curves.append((f"{src} vs all reals", own | reals))
    for name, mask in curves:
        if len(set(scores.labels[mask].tolist())) < 2:
            continue
        fpr, tpr, _ = roc_curve(scores.labels[mask], scores.probs[mask])
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(scores.labels[mask], scores.probs[mask]):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate (reals called fake)")
    ax.set_ylabel("true positive rate (fakes caught)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
