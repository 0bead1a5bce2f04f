"""One verdict from several models: their face logits combined by a rule fitted on ``val``, then calibrated.

The members are bundles that score the same faces, each cut as that member asks (its size, margin and scale).
Two rules are tried on the validation split of every dataset given:

- ``stacking``: a logistic regression on the members' logits (non-negative weights
  and an intercept), fitted with cross-fitting: the val images are split into folds by
  group (a source video and its swaps stay together), and each fold is scored by
  a regression fitted on the other folds, so no image is scored by weights that
  saw it;
- ``mean``: the members' logits averaged, nothing fitted;
- ``max``: each member's logit rescaled by a logistic regression of its own
  (a slope and an offset, cross-fitted the same way), and the face as suspicious
  as its most suspicious member: for members that each see something the others
  miss (a blend-artefact model blind to generated faces beside a supervised one),
  where a weighted sum would let one member's confident "real" cancel the other's
  "fake".

The rule with the higher out-of-fold AUC is kept, and only where it beats the
best single member on val by more than ``MIN_GAIN``; the calibration and both thresholds are then fitted
on the out-of-fold logits, as for a single model (:func:`.calibration.fit_scores`).
The ensemble bundle holds no weights: its metadata names its members (folders
beside it in ``ml_models/``) with their versions, which :mod:`.bundle` checks.

    python -m detector.ml.training.ensemble --member faces-effnetlite0-v2 --member sbi-effnetlite0-v1 \\
        --out ml_models/ensemble-v1 --model-version 2.5.0 \\
        --dataset ../shared/datasets/faces --dataset .cache/datasets/ffpp
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..inference.bundle import METADATA_FILE, BundleMetadata, read_metadata
from ..measurement.dataset import Sample, read_manifest
from .calibration import fit_scores
from .recipe import dataset_name

log = logging.getLogger(__name__)

FOLDS = 5
# An ensemble costs a second network per face: it ships only where its val AUC is this much above the best member's.
MIN_GAIN = 0.002


class _Members:
    """The members side by side, for :func:`.evaluation.prepared_batches`: one face search, every member's logits."""

    def __init__(self, detectors):
        self.detectors = detectors
        self.crop_specs = list(dict.fromkeys(d.spec for d in detectors))  # each member cuts faces its own way

    def prepare(self, image):
        return self.detectors[0].prepare(image, also=tuple(self.crop_specs[1:]))

    def views(self, crops):
        return {spec: np.stack([c.view(spec) for c in crops]) for spec in self.crop_specs}

    def face_logits(self, crops):
        return np.stack([d.face_logits(crops) for d in self.detectors], axis=1)


def member_face_logits(detectors, samples: list[Sample], progress: bool = True):
    """Per val image: its label, source, group and its faces' logits by member, (faces, members)."""
    from ..measurement.evaluation import prepared_batches

    rows = []
    for s, _, logits in prepared_batches(_Members(detectors), samples, progress=progress):
        rows.append((s.label, s.source, s.group or str(s.path), np.asarray(logits, float)))
    return rows


def image_logits(rows, combine) -> np.ndarray:
    """Each image's logit as serving computes it: its most suspicious face's combined logit."""
    return np.array([float(np.max(combine(z))) for *_, z in rows])


def _auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def fit_stacking(rows, c: float = 1.0):
    """A logistic regression on the members' face logits, each face labelled with its image's label.

    The weights are kept non-negative, as in Breiman's stacked regressions: each member's
    logit is evidence that a face is fake, and a negative weight would trade on a member's
    blind spot in the val sources (a blend-artefact model that finds generated faces more
    real than real ones) rather than on what it sees. A member whose weight comes out
    negative is dropped (weight 0) and the rest refitted.
    """
    x = np.concatenate([z for *_, z in rows])
    y = np.concatenate([np.full(len(z), label) for label, *_, z in rows])
    return fit_nonnegative(x, y, c=c)


def fit_nonnegative(x: np.ndarray, y: np.ndarray, weights=None, c: float = 1.0) -> tuple[np.ndarray, float]:
    """Logistic regression of ``y`` on the columns of ``x`` with non-negative weights: a column whose weight comes
    out negative is dropped (weight 0) and the rest refitted."""
    from sklearn.linear_model import LogisticRegression

    kept = np.arange(x.shape[1])
    while True:
        lr = LogisticRegression(C=c, max_iter=2000).fit(x[:, kept], y, sample_weight=weights)
        if (lr.coef_[0] >= 0).all() or len(kept) == 1:
            break
        kept = kept[lr.coef_[0] >= 0] if (lr.coef_[0] >= 0).any() else kept[[int(np.argmax(lr.coef_[0]))]]
    out = np.zeros(x.shape[1])
    out[kept] = lr.coef_[0]
    return out, float(lr.intercept_[0])


def fit_rescaling(rows):
    """Each member's own logistic regression on its logits: (slopes, offsets)."""
    fitted = [fit_stacking([(*r[:3], r[3][:, [i]]) for r in rows]) for i in range(rows[0][3].shape[1])]
    return np.array([w[0] for w, _ in fitted]), np.array([b for _, b in fitted])


def max_combine(slopes, offsets):
    return lambda z: (z * slopes + offsets).max(axis=1)


def cross_fitted_max(rows, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Out-of-fold image logits of the max rule, its rescaling fitted on the other folds."""
    from sklearn.model_selection import GroupKFold

    groups = np.array([g for _, _, g, _ in rows])
    labels = np.array([label for label, *_ in rows])
    out = np.empty(len(rows))
    for train, held in GroupKFold(folds, shuffle=True, random_state=seed).split(labels, labels, groups):
        slopes, offsets = fit_rescaling([rows[i] for i in train])
        out[held] = image_logits([rows[i] for i in held], max_combine(slopes, offsets))
    return out


def cross_fitted(rows, folds: int = FOLDS, seed: int = 0, columns=None) -> tuple[np.ndarray, list]:
    """Out-of-fold image logits of the stacking rule (folds by group), and each fold's weights.

    ``columns`` picks members (all by default): one member alone, cross-fitted the same way,
    is what the stacking of several must beat, since refitting by fold moves the AUC by itself.
    """
    if columns is not None:
        rows = [(*r[:3], r[3][:, columns]) for r in rows]
    from sklearn.model_selection import GroupKFold

    groups = np.array([g for _, _, g, _ in rows])
    labels = np.array([label for label, *_ in rows])
    out = np.empty(len(rows))
    fitted = []
    for train, held in GroupKFold(folds, shuffle=True, random_state=seed).split(labels, labels, groups):
        w, b = fit_stacking([rows[i] for i in train])
        fitted.append({"weights": w.tolist(), "intercept": b})
        out[held] = image_logits([rows[i] for i in held], lambda z, w=w, b=b: z @ w + b)
    return out, fitted


def fit_ensemble(
    members: list[Path],
    out: Path,
    version: str,
    datasets: list[Path],
    max_far: float = 0.03,
    max_missed: float = 0.10,
    progress: bool = True,
    exclude_sources: tuple[str, ...] = (),
    rule: str | None = None,
    title: str = "",
    one_view: tuple[str, ...] = (),
) -> dict:
    """Fit, compare and (where it earns its place) write the ensemble bundle; returns the comparison.

    ``exclude_sources`` leaves sources out of val, as ``train_detector --exclude-source`` leaves them out of
    training: an ensemble of members trained without a method, fitted without it, to score it as unseen.
    ``rule`` imposes one rule (a shipped ensemble's, on such members) and writes it whatever the comparison
    says: for measuring a recipe, never for shipping.
    ``one_view`` names members that judge a face's crop alone in this ensemble, whatever their own bundles say
    (where their mirror image earns nothing, :mod:`..measurement.mirror`); the members' records say so.
    """
    from ..inference.predictor import Detector

    detectors = [Detector(p) for p in members]
    unknown = set(one_view) - {Path(p).name for p in members}
    if unknown:
        raise ValueError(f"--one-view names no member: {', '.join(sorted(unknown))}")
    for p, d in zip(members, detectors, strict=True):
        if Path(p).name in one_view:
            d.meta.test_time_flip = False  # scored as served: the crop alone
    metas = [d.meta for d in detectors]
    left_out = set(exclude_sources)
    samples = [s for root in datasets for s in read_manifest(root, "val") if s.source not in left_out]
    rows = member_face_logits(detectors, samples, progress)
    labels = np.array([label for label, *_ in rows])
    sources = np.array([source for _, source, *_ in rows])

    singles = {m.name: _auc(labels, image_logits(rows, lambda z, i=i: z[:, i])) for i, m in enumerate(metas)}
    singles_refit = {m.name: _auc(labels, cross_fitted(rows, columns=[i])[0]) for i, m in enumerate(metas)}
    mean_logits = image_logits(rows, lambda z: z.mean(axis=1))
    stacked_logits, folds = cross_fitted(rows)
    max_logits = cross_fitted_max(rows)
    rules = {
        "mean": _auc(labels, mean_logits),
        "stacking": _auc(labels, stacked_logits),
        "max": _auc(labels, max_logits),
    }
    imposed = rule is not None
    if rule is None:
        rule = max(rules, key=rules.get)
    elif rule not in rules:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(rules)}")
    best_single = max(*singles.values(), *singles_refit.values())
    comparison = {
        "val_images": len(rows),
        "val_auc": {
            "members": singles,
            "members refitted by fold": singles_refit,
            "mean": rules["mean"],
            "stacking (out of fold)": rules["stacking"],
            "max (out of fold)": rules["max"],
        },
        "rule": rule,
        "beats_best_member": rules[rule] > best_single + MIN_GAIN,
        **({"rule_imposed": True} if imposed else {}),
        **({"val_without": sorted(exclude_sources)} if exclude_sources else {}),
        **({"one_view": sorted(one_view)} if one_view else {}),
    }
    if not comparison["beats_best_member"] and not imposed:
        log.warning("no ensemble rule beats the best member on val (%.4f): nothing written", best_single)
        return comparison

    offsets = np.zeros(len(metas))
    if rule == "stacking":
        weights, intercept = fit_stacking(rows)
        fitted_logits = stacked_logits
    elif rule == "max":
        (weights, offsets), intercept = fit_rescaling(rows), 0.0
        fitted_logits = max_logits
    else:
        weights, intercept = np.full(len(metas), 1.0 / len(metas)), 0.0
        fitted_logits = mean_logits
    calibration, thresholds, record = fit_scores(fitted_logits, labels, sources, max_far, max_missed)
    record["face_logit"] = "the members' face logits combined by the ensemble's rule"
    record["fitted_on"] = "the members' mean logit" if rule == "mean" else "out-of-fold logits"
    names = [dataset_name(p) for p in datasets]
    meta = BundleMetadata(
        name=Path(out).name,
        version=version,
        input_size=metas[0].input_size,
        face_margin=metas[0].face_margin,
        crop_scale=metas[0].crop_scale,
        calibration=calibration,
        thresholds=thresholds,
        weights_file="",
        test_time_flip=all(m.test_time_flip for m in metas),
        members=[
            {
                "bundle": Path(p).name,
                "version": m.version,
                "title": m.training.get("title", m.name),
                "weight": float(w),
                **({"offset": float(o)} if rule == "max" else {}),
                **({"test_time_flip": False} if Path(p).name in one_view else {}),
            }
            for p, m, w, o in zip(members, metas, weights, offsets, strict=True)
        ],
        stacking={
            "rule": rule,
            "intercept": float(intercept),
            "folds": None if rule == "mean" else FOLDS,
            "fold_weights": folds if rule == "stacking" else None,
        },
        training={
            "dataset": f"{' + '.join(names)} (val split: the rule, the calibration and the thresholds)",
            "val_images": len(rows),
            "val_auc": rules[rule],
            **({"title": title} if title else {}),
            "comparison": comparison,
            "calibration": record,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / METADATA_FILE).write_text(meta.to_json())
    read_metadata(out)  # the members check out as written
    return comparison


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--member", action="append", type=Path, required=True, help="a member bundle (repeat)")
    p.add_argument("--out", type=Path, required=True, help="the ensemble bundle to write (beside its members)")
    p.add_argument("--model-version", required=True)
    p.add_argument("--title", default="", help="what the ensemble is, in a few words, for pages that list versions")
    p.add_argument("--dataset", action="append", type=Path, required=True, help="a dataset whose val split to use")
    p.add_argument("--max-false-accusation", type=float, default=0.03)
    p.add_argument("--max-missed-fakes", type=float, default=0.10)
    p.add_argument(
        "--exclude-source",
        action="append",
        default=[],
        dest="exclude_sources",
        help="leave this source out of val, for members trained without it (repeat for several)",
    )
    p.add_argument(
        "--rule",
        choices=["mean", "stacking", "max"],
        help="impose this rule and write it even where it does not beat the members: to measure a recipe "
        "(a shipped ensemble's rule on members trained without a method), not to ship",
    )
    p.add_argument(
        "--one-view",
        action="append",
        default=[],
        metavar="MEMBER",
        help="this member judges each face's crop alone here, without its mirror image (repeat for several)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if any(m.resolve().parent != args.out.resolve().parent for m in args.member):
        p.error("the members must be folders beside --out (an ensemble refers to them by name)")
    comparison = fit_ensemble(
        args.member,
        args.out,
        args.model_version,
        args.dataset,
        args.max_false_accusation,
        args.max_missed_fakes,
        exclude_sources=tuple(args.exclude_sources),
        rule=args.rule,
        title=args.title,
        one_view=tuple(args.one_view),
    )
    print(json.dumps(comparison, indent=2))


if __name__ == "__main__":
    main()
