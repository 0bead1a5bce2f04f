"""Fitting a bundle's calibration and thresholds on ``val``, through the serving path (:func:`calibrate_bundle`).

What is fitted here is applied by :mod:`detector.ml.inference.calibration`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..inference.calibration import Calibration, Thresholds


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


def choose_real_below(probs, labels, max_missed: float, upper: float) -> float:
    """Highest lower threshold under which at most ``max_missed`` of the val fakes fall (they would be called Real).

    At most k = floor(max_missed * n) fakes may score below it, so it sits at the
    (k+1)-th lowest fake score. It never passes the upper threshold, nor 0.5: an
    image more likely fake than real is never called Real.
    """
    ranked = np.sort(probs[labels == 1])
    if not ranked.size:
        return min(upper, 0.5)
    k = int(np.floor(max_missed * len(ranked)))
    lower = float(ranked[k]) if k < len(ranked) else 1.0
    return min(lower, upper, 0.5)


def rates_by_source(probs, labels, sources, thresholds: Thresholds) -> dict:
    """On val, for each source: the share of its reals called Deepfake and of its fakes called Real, with counts."""
    out = {}
    for source in np.unique(sources):
        mine = sources == source
        reals, fakes = probs[mine & (labels == 0)], probs[mine & (labels == 1)]
        row = {}
        if reals.size:
            row.update(reals=int(reals.size), called_deepfake=float((reals >= thresholds.deepfake_from).mean()))
        if fakes.size:
            row.update(fakes=int(fakes.size), called_real=float((fakes < thresholds.real_below).mean()))
        out[str(source)] = row
    return out


REFERENCE_POINTS = 201  # the val scores of each class at every half percent


def val_reference(probs, labels) -> dict:
    """The calibrated val scores of the reals and of the fakes, as quantiles (0 %, 0.5 %, ..., 100 %).

    With them a verdict can say where a score stands among images whose truth is known:
    "higher than 97 of 100 real images of the validation set" (:func:`share_below`).
    """
    grid = np.linspace(0.0, 1.0, REFERENCE_POINTS)
    out = {"points": REFERENCE_POINTS}
    for name, value in (("reals", 0), ("fakes", 1)):
        mine = np.asarray(probs, float)[np.asarray(labels) == value]
        out[name] = int(mine.size)
        out[f"{name}_quantiles"] = [round(float(q), 6) for q in np.quantile(mine, grid)] if mine.size else []
    return out


def fit_scores(logits, labels, sources, max_far: float = 0.03, max_missed: float = 0.10):
    """Calibration and both thresholds from val images' logits (each image's most suspicious face), and their record."""
    logits, labels, sources = np.asarray(logits, float), np.asarray(labels), np.asarray(sources)
    calibration = fit_calibration(logits, labels)
    probs = np.array([calibration.probability(z) for z in logits])
    upper = choose_threshold(probs, labels, sources, max_far)
    thresholds = Thresholds(upper, choose_real_below(probs, labels, max_missed, upper), upper)
    record = {
        "split": "val",
        "images": int(len(logits)),
        "method": f"{calibration.method} of the image's largest face logit",
        "threshold_rule": f"at most {max_far:.1%} of validation reals are called Deepfake, overall and in every "
        "real source with 50 or more images",
        "real_rule": f"at most {max_missed:.0%} of all validation fakes are called Real (and never where p >= 0.5)",
        "by_source": rates_by_source(probs, labels, sources, thresholds),
        "reference": val_reference(probs, labels),
    }
    return calibration, thresholds, record


def calibrate_bundle(
    path: Path,
    samples,
    max_far: float = 0.03,
    max_missed: float = 0.10,
    *,
    test_time_flip: bool | None = None,
    version: str | None = None,
):
    """Fit the calibration and choose the thresholds on the val ``samples`` through the serving path.

    The metadata is rewritten with them.

    Serving judges an image by its most suspicious face, so the calibration is
    fitted on each image's largest face logit, exactly as the detector computes it.
    ``test_time_flip`` (where given) changes how the bundle scores a face before
    the fit; ``version`` renames it, recording the version whose weights it keeps:
    its verdicts change, so it is not the same model for the records.
    """
    from ..inference.bundle import METADATA_FILE
    from ..inference.predictor import Detector
    from ..measurement.evaluation import prepared_batches

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
    meta.calibration, meta.thresholds, record = fit_scores(logits, labels, sources, max_far, max_missed)
    face_logit = "mean over the crop and its mirror image" if meta.test_time_flip else "the crop's"
    meta.training["calibration"] = {"face_logit": face_logit, **record}
    (Path(path) / METADATA_FILE).write_text(meta.to_json())
    return meta
