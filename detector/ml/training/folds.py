"""Out-of-domain folds: what decides between models, ensemble rules and the Real threshold.

Every fake of the in-domain val split is of a kind the models trained on, so val cannot tell a model that learnt
"looks like the fakes I saw" from one that learnt what a manipulation leaves. A fold keeps a whole kind of data out
of training and scores it as unseen: a dataset (DFDC, FaceForensics++), a method (FaceSwap), a generator family
(StyleGAN and StyleGAN2, Stable Diffusion). Its held-out part is that kind's fakes of the val and test splits
together, against the reals of the same source (or, for generated faces, the FFHQ and CelebA reals).

Each component of an ensemble is scored on a fold by its version trained without that fold's data: a network
retrained without it (``--exclude-source``), a model that never saw that kind at all (the blend-artefact model saw
no fake; 1.4.0 never saw FaceForensics++), or a CLIP head fitted again without it (seconds). A plan (JSON) names
them; :func:`analyse` scores every component on every fold, fits the rule on the folds' held-out parts
(cross-fitted: a fold is scored by a rule fitted on the other folds), and reports each fold's AUC with its 95 %
interval.

    python -m detector.ml.training.folds --plan benchmarks/folds-plan.json --out .cache/folds/report.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..measurement.dataset import Sample, read_manifest
from .ensemble import fit_nonnegative
from .recipe import dataset_name

log = logging.getLogger(__name__)
SPLITS = ("val", "test")
FFPP_FAKES = frozenset({"ffpp_deepfakes", "ffpp_face2face", "ffpp_faceswap"})
PORTRAIT_REALS = frozenset({"ffhq", "celeba"})


@dataclass(frozen=True)
class Fold:
    name: str
    title: str
    left_out: frozenset  # sources no model of this fold trained on
    fakes: frozenset  # the unseen fakes scored
    reals: frozenset  # the reals they are scored against

    def held_out(self, labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
        return ((labels == 1) & np.isin(sources, list(self.fakes))) | (
            (labels == 0) & np.isin(sources, list(self.reals))
        )

    def shares_images_with(self, other: Fold) -> bool:
        """Whether the two folds hold out some of the same images (FaceSwap's fakes are FaceForensics++ fakes; the
        StyleGAN and Stable Diffusion folds are both scored against the FFHQ and CelebA reals)."""
        return bool(self.fakes & other.fakes or self.reals & other.reals)


FOLDS = (
    Fold("dfdc", "DFDC left out", frozenset({"dfdc"}), frozenset({"dfdc"}), frozenset({"dfdc"})),
    Fold(
        "ffpp",
        "FaceForensics++ left out",
        FFPP_FAKES | {"ffpp_real"},
        FFPP_FAKES,
        frozenset({"ffpp_real"}),
    ),
    Fold(
        "faceswap",
        "FaceSwap left out",
        frozenset({"ffpp_faceswap"}),
        frozenset({"ffpp_faceswap"}),
        frozenset({"ffpp_real"}),
    ),
    Fold(
        "stylegan",
        "StyleGAN and StyleGAN2 left out",
        frozenset({"stylegan", "tpdne1024"}),
        frozenset({"stylegan", "tpdne1024"}),
        PORTRAIT_REALS,
    ),
    Fold("sdfd", "Stable Diffusion left out", frozenset({"sdfd"}), frozenset({"sdfd"}), PORTRAIT_REALS),
)
FOLD_BY_NAME = {f.name: f for f in FOLDS}


@dataclass
class Images:
    """The val and test images of every dataset, side by side: what every component is scored on."""

    samples: list[Sample]
    labels: np.ndarray = field(init=False)
    sources: np.ndarray = field(init=False)
    splits: np.ndarray = field(init=False)

    def __post_init__(self):
        self.labels = np.array([s.label for s in self.samples])
        self.sources = np.array([s.source for s in self.samples], dtype=object)
        self.splits = np.array([s.split for s in self.samples], dtype=object)

    @classmethod
    def of(cls, datasets) -> Images:
        return cls([s for root in datasets for split in SPLITS for s in read_manifest(root, split)])

    def parts(self):
        """(dataset name, split, index array) of each dataset's split, in order."""
        keys = [(s.dataset, s.split) for s in self.samples]
        for key in dict.fromkeys(keys):
            yield key[0], key[1], np.array([i for i, k in enumerate(keys) if k == key])


# -- scores ------------------------------------------------------------------------------------------------------


def _score_file(cache: Path, who: str, dataset: str, split: str, n: int) -> Path:
    return cache / who / f"{dataset}-{split}-{n}.npy"


def network_logits(bundles: list[Path], images: Images, cache: Path, progress: bool = True) -> dict[str, np.ndarray]:
    """Each bundle's image logit (its most suspicious face's, as serving computes it) on every image, kept in
    ``cache`` per bundle version and dataset split; the bundles still missing a split are scored together, one face
    search for all of them."""
    from ..inference.predictor import Detector
    from .ensemble import member_face_logits

    out = {}
    metas = {str(b): __import__("json").loads((Path(b) / "metadata.json").read_text()) for b in bundles}
    ids = {str(b): f"{metas[str(b)]['name']}-{metas[str(b)]['version']}" for b in bundles}
    for b in bundles:
        out[str(b)] = np.full(len(images.samples), np.nan)
    for dataset, split, idx in images.parts():
        missing = []
        for b in bundles:
            path = _score_file(cache, ids[str(b)], dataset, split, len(idx))
            if path.exists():
                out[str(b)][idx] = np.load(path)
            else:
                missing.append(b)
        if not missing:
            continue
        log.info("scoring %s %s (%d images) with %s", dataset, split, len(idx), ", ".join(ids[str(b)] for b in missing))
        detectors = [Detector(b) for b in missing]
        rows = member_face_logits(detectors, [images.samples[i] for i in idx], progress)
        logits = np.array([z.max(axis=0) for *_, z in rows])  # each member's most suspicious face
        for k, b in enumerate(missing):
            path = _score_file(cache, ids[str(b)], dataset, split, len(idx))
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, logits[:, k])
            out[str(b)][idx] = logits[:, k]
    return out


def clip_embeddings(images: Images, cache: Path, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """The main face's CLIP embedding of every image (and whether a face was found), per dataset split."""
    from ..inference.clip import EMBEDDING_SIZE
    from .clip_head import cached_embeddings

    emb = np.zeros((len(images.samples), EMBEDDING_SIZE), np.float32)
    found = np.zeros(len(images.samples), bool)
    for dataset, split, idx in images.parts():
        e, f = cached_embeddings([images.samples[i] for i in idx], cache, f"{dataset}-{split}", workers)
        emb[idx], found[idx] = e, f
    return emb, found


# -- measures ----------------------------------------------------------------------------------------------------


def auc(labels, scores) -> float | None:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def auc_interval(labels, scores, resamples: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """The 95 % bootstrap interval of the AUC, resampling each class on its own."""
    labels, scores = np.asarray(labels), np.asarray(scores, float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        p = pos[rng.integers(0, len(pos), len(pos))]
        n = neg[rng.integers(0, len(neg), len(neg))]
        # AUC as the share of (fake, real) pairs ranked right, ties counting half
        order = np.concatenate([n, p])
        ranks = _ranks(order)
        values.append((ranks[len(n) :].sum() - len(p) * (len(p) + 1) / 2) / (len(p) * len(n)))
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def auc_record(labels, scores) -> dict:
    """AUC of fakes against reals with its 95 % interval, and the counts."""
    labels, scores = np.asarray(labels), np.asarray(scores, float)
    value = auc(labels, scores)
    return {
        "auc": value,
        "interval": auc_interval(labels, scores) if value is not None else None,
        "fakes": int((labels == 1).sum()),
        "reals": int((labels == 0).sum()),
    }


def fold_auc(fold: Fold, images: Images, scores: np.ndarray) -> dict:
    held = fold.held_out(images.labels, images.sources) & ~np.isnan(scores)
    return auc_record(images.labels[held], scores[held])


# -- the plan ----------------------------------------------------------------------------------------------------


@dataclass
class Component:
    """What an ensemble is made of, in the folds' terms: its version trained on everything (``full``), and for each
    fold the version that never saw that fold's data (``folds``: a bundle, ``"full"`` where the full version
    itself never saw it, absent where none exists), or a CLIP head fitted per fold (``clip``)."""

    name: str
    full: str | list | None = None  # a bundle, or several whose logits are averaged (the CNN members' mean rule)
    folds: dict = field(default_factory=dict)
    clip: bool = False
    note: str = ""

    @property
    def full_bundles(self) -> list[str]:
        return [] if self.full is None else [self.full] if isinstance(self.full, str) else list(self.full)


def read_plan(path: Path) -> tuple[list[Path], list[Component], dict]:
    plan = json.loads(Path(path).read_text())
    components = [Component(**c) for c in plan["components"]]
    return [Path(d) for d in plan["datasets"]], components, plan


def component_scores(components, images: Images, cache: Path, clip_options: dict, progress=True) -> dict:
    """``{component: {"full": logits, fold: logits}}`` on every image (NaN where a version does not exist)."""
    bundles = sorted(
        {b for c in components if not c.clip for b in c.full_bundles}
        | {v for c in components for v in c.folds.values() if v not in ("full", None)}
    )
    logits = network_logits([Path(b) for b in bundles], images, cache, progress) if bundles else {}
    out = {}
    for c in components:
        if c.clip:
            out[c.name] = clip_fold_logits(images, cache, **clip_options)
            continue
        mine = {"full": np.mean([logits[str(Path(b))] for b in c.full_bundles], axis=0)} if c.full else {}
        for fold, version in c.folds.items():
            mine[fold] = mine["full"] if version == "full" else logits[str(Path(version))]
        out[c.name] = mine
    return out


def clip_fold_logits(images: Images, cache: Path, datasets, cap=1500, sbi=2000, share=0.2, c=1.0, workers=None):
    """A CLIP head fitted on all training data (``full``) and one per fold without that fold's sources, each
    scored on every image's main-face embedding."""
    from .clip_head import TrainingFeatures, fit_head

    workers = workers or os.cpu_count() or 1
    features = TrainingFeatures.load([Path(d) for d in datasets], cap, sbi, cache, workers)
    emb, _ = clip_embeddings(images, cache, workers)
    out = {}
    for name, left_out in [("full", frozenset())] + [(f.name, f.left_out) for f in FOLDS]:
        x, y, w = features.rows(left_out, share)
        out[name] = fit_head(x, y, w, c).logits(emb)
    return out


def pooled_rows(names, scores, images: Images, folds=FOLDS):
    """Per fold, its held-out images' fold-version logits of each component (a column each); folds where a
    component has no version are left out, and images a component could not score (unreadable)."""
    rows = {}
    for fold in folds:
        if not all(fold.name in scores[n] for n in names):
            continue
        held = fold.held_out(images.labels, images.sources)
        x = np.stack([scores[n][fold.name][held] for n in names], axis=1)
        ok = ~np.isnan(x).any(axis=1)
        rows[fold.name] = (x[ok], images.labels[held][ok])
    return rows


def hinge(x: np.ndarray, at: float) -> np.ndarray:
    return np.maximum(0.0, x - at)


def balanced(rows: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The folds' rows pooled, each fold and each class within it weighing the same."""
    xs, ys, ws = [], [], []
    for x, y in rows.values():
        w = np.where(y == 1, 0.5 / max(1, (y == 1).sum()), 0.5 / max(1, (y == 0).sum()))
        xs.append(x)
        ys.append(y)
        ws.append(w / len(rows))
    w = np.concatenate(ws)
    return np.concatenate(xs), np.concatenate(ys), w * len(w) / w.sum()


def cross_fitted_rule(rows: dict, transform=None) -> tuple[dict, tuple[np.ndarray, float]]:
    """Each fold's held-out logits under a non-negative stacking fitted on the other folds, leaving out those that
    hold out some of the same images (a rule fitted on the FaceForensics++ fold has seen the FaceSwap fold's fakes
    and reals); and the rule fitted on all of them. ``transform`` turns the component columns into the rule's
    features (hinges)."""
    transform = transform or (lambda x: x)
    out = {}
    for name, (x, _) in rows.items():
        fold = FOLD_BY_NAME[name]
        others = {k: v for k, v in rows.items() if k != name and not fold.shares_images_with(FOLD_BY_NAME[k])}
        if not others:
            continue
        xo, yo, wo = balanced(others)
        w, b = fit_nonnegative(transform(xo), yo, wo)
        out[name] = transform(x) @ w + b
    xa, ya, wa = balanced(rows)
    return out, fit_nonnegative(transform(xa), ya, wa)


@dataclass
class Results:
    """What the folds found: the report (JSON), and each rule's cross-fitted held-out logits by fold."""

    report: dict
    held: dict  # rule -> fold -> (logits, labels)
    images: Images


def _transform(names: list[str], at: dict):
    """The rule's features from its components' logits: a specialist (in ``at``) as a hinge above its own score of
    all but the top few val reals, the others as they are."""
    columns = [(names.index(n), a) for n, a in at.items()]

    def transform(x):
        x = x.copy()
        for col, a in columns:
            x[:, col] = hinge(x[:, col], a)
        return x

    return transform


def analyse(plan_path: Path, cache: Path, progress: bool = True) -> Results:
    """Every component on every fold it has a version for, and every rule of the plan, cross-fitted by fold."""
    datasets, components, plan = read_plan(plan_path)
    images = Images.of(datasets)
    clip_options = {"datasets": [str(d) for d in plan.get("clip_datasets", datasets)], **plan.get("clip", {})}
    scores = component_scores(components, images, cache, clip_options, progress)
    report = {
        "what": plan.get("what", ""),
        "datasets": [dataset_name(d) for d in datasets],
        "components": {c.name: c.note for c in components},
        "folds": {},
        "rules": {},
    }
    for fold in FOLDS:
        per = {}
        for c in components:
            if fold.name in scores[c.name]:
                per[c.name] = fold_auc(fold, images, scores[c.name][fold.name])
        report["folds"][fold.name] = {"title": fold.title, "components": per}
    held_by_rule = {}
    val_reals = (images.labels == 0) & (images.splits == "val")
    for rule in plan.get("rules", []):
        names = rule["components"]
        rows = pooled_rows(names, scores, images)
        hinges = rule.get("hinges", {})
        # a specialist counts only above its own score of all but the top ``limit`` of the val reals
        at = {n: float(np.nanquantile(scores[n]["full"][val_reals], 1 - limit)) for n, limit in hinges.items()}
        transform = _transform(names, at)
        if rule.get("fixed") == "mean":
            held = {k: x.mean(axis=1) for k, (x, _) in rows.items()}
            fitted = (np.full(len(names), 1 / len(names)), 0.0)
        else:
            held, fitted = cross_fitted_rule(rows, transform)
        per = {}
        held_by_rule[rule["name"]] = {}
        for name, logits in held.items():
            labels = rows[name][1]
            per[name] = auc_record(labels, logits)
            held_by_rule[rule["name"]][name] = (logits, labels)
        report["rules"][rule["name"]] = {
            "components": names,
            "hinges": {n: {"limit": hinges[n], "at": at[n]} for n in hinges},
            "weights": dict(zip(names, map(float, fitted[0]), strict=True)),
            "intercept": fitted[1],
            "folds": per,
            "folds_used": sorted(rows),
        }
    common = common_folds(report["rules"])
    for r in report["rules"].values():
        scored = common and all(k in r["folds"] for k in common)
        r["mean_auc_on_common_folds"] = float(np.mean([r["folds"][k]["auc"] for k in common])) if scored else None
    report["common_folds"] = common
    return Results(report, held_by_rule, images)


def common_folds(rules: dict) -> list[str]:
    """The folds on which every rule has a held-out AUC: rules are compared there (a rule of components that have
    no version without StyleGAN, say, would otherwise be averaged over fewer, easier folds)."""
    sets = [{k for k, v in r["folds"].items() if v["auc"] is not None} for r in rules.values()]
    sets = [s for s in sets if s]  # a rule scored on no fold (too few folds to cross-fit it) is not compared
    return sorted(set.intersection(*sets)) if sets else []


def best_rule(report: dict) -> str:
    """The rule with the best mean AUC over the folds every rule was scored on."""
    rules = {k: r for k, r in report["rules"].items() if r.get("mean_auc_on_common_folds") is not None}
    if not rules:
        raise ValueError("no rule was scored on a fold every other rule was scored on")
    return max(rules, key=lambda r: rules[r]["mean_auc_on_common_folds"])


def real_threshold_from_folds(calibration, held: dict, share: float = 0.10) -> tuple[float, dict]:
    """The highest score under which at most ``share`` of each fold's held-out fakes fall, once calibrated as the
    served bundle calibrates; and, per fold, that point."""
    points = {}
    for name, (logits, labels) in held.items():
        probs = np.sort([calibration.probability(float(z)) for z in logits[labels == 1]])
        k = int(np.floor(share * len(probs)))
        points[name] = float(probs[k]) if len(probs) else 1.0
    return (min(points.values()) if points else 1.0), points


def unseen_record(results: Results, rule: str, calibration, thresholds, what: str = "") -> dict:
    """``metrics-unseen.json``: per fold, how the version's rule did on fakes of a kind it never trained on (its
    cross-fitted held-out logits, calibrated as the bundle calibrates)."""
    kinds = []
    for name, (logits, labels) in results.held[rule].items():
        probs = np.array([calibration.probability(float(z)) for z in logits])
        fakes = probs[labels == 1]
        fold_figures = results.report["rules"][rule]["folds"][name]
        kinds.append(
            {
                "name": name,
                "title": FOLD_BY_NAME[name].title.replace(" left out", ""),
                "fakes": int(len(fakes)),
                "reals": int((labels == 0).sum()),
                "called_real": float((fakes < thresholds.real_below).mean()),
                "caught": float((fakes >= thresholds.deepfake_from).mean()),
                "reals_accused": float((probs[labels == 0] >= thresholds.deepfake_from).mean()),
                "auc": fold_figures["auc"],
                "interval": fold_figures["interval"],
            }
        )
    return {
        "what": what
        or "fakes of kinds kept out of training (out-of-domain folds, val and test splits together), scored by "
        "the rule fitted on the other folds with each component's version that never saw them",
        "rule": rule,
        "kinds": kinds,
        "called_real": float(np.mean([k["called_real"] for k in kinds])),
        "caught": float(np.mean([k["caught"] for k in kinds])),
    }


def write_ensemble(
    results: Results, rule: str, members: dict, out: Path, version: str, title: str, val_datasets, max_far=0.03
):
    """The ensemble of ``rule`` as a bundle: ``members`` maps each component to its bundles (a component of several,
    the networks' mean, shares its weight equally); calibration and the Deepfake threshold fitted on in-domain val
    through the serving path; Real only below where at most 10 % of the folds' unseen fakes fall, and of the val
    fakes; the folds' figures kept beside it."""
    from ..inference.bundle import METADATA_FILE, BundleMetadata, read_metadata
    from ..inference.calibration import Calibration, Thresholds
    from ..measurement.dataset import read_manifest
    from .calibration import calibrate_bundle

    fitted = results.report["rules"][rule]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for component, weight in fitted["weights"].items():
        bundles = members[component]
        for bundle in bundles:
            meta = read_metadata(Path(bundle))
            entry = {
                "bundle": Path(bundle).name,
                "version": meta.version,
                "title": meta.training.get("title", ""),
                "weight": weight / len(bundles),
            }
            if component in fitted["hinges"]:
                entry["hinge_at"] = fitted["hinges"][component]["at"]
            entries.append(entry)
    first = read_metadata(Path(members[next(iter(fitted["weights"]))][0]))
    meta = BundleMetadata(
        name=out.name,
        version=version,
        input_size=first.input_size,
        face_margin=first.face_margin,
        calibration=Calibration(),
        thresholds=Thresholds(),
        members=[e for e in entries if e["weight"] > 0],
        stacking={"rule": "folds", "intercept": fitted["intercept"], "chosen_on": "out-of-domain folds", "fit": rule},
        test_time_flip=True,
        training={"title": title, "kind": "ensemble", "folds": results.report},
    )
    (out / METADATA_FILE).write_text(meta.to_json())
    val = [s for root in val_datasets for s in read_manifest(root, "val")]
    calibrate_bundle(out, val, max_far=max_far)
    meta = read_metadata(out)
    from_folds, points = real_threshold_from_folds(meta.calibration, results.held[rule])
    real_below = min(meta.thresholds.real_below, from_folds)
    meta.thresholds = Thresholds(meta.thresholds.decision, real_below, meta.thresholds.deepfake_from)
    meta.training["calibration"]["real_from_folds"] = {
        "rule": "Real only below the score under which at most 10 % of each out-of-domain fold's fakes fall (and of "
        "the val fakes)",
        "per_fold": points,
        "from_val": read_metadata(out).thresholds.real_below,
        "chosen": real_below,
    }
    (out / METADATA_FILE).write_text(meta.to_json())
    record = unseen_record(results, rule, meta.calibration, meta.thresholds)
    (out / "metrics-unseen.json").write_text(json.dumps(record, indent=1) + "\n")
    return meta


def write_unseen_for(results: Results, rule: str, bundle: Path) -> dict:
    """``metrics-unseen.json`` for a served bundle the folds did not write: ``rule``'s components, in their versions
    that never saw each fold, stand in for it, and their held-out logits are read with its calibration and
    thresholds."""
    from ..inference.bundle import read_metadata

    meta = read_metadata(Path(bundle))
    versions = results.report["components"]
    record = unseen_record(
        results,
        rule,
        meta.calibration,
        meta.thresholds,
        what="fakes of kinds kept out of training (out-of-domain folds, val and test splits together), scored by the "
        f"versions of its kind of model that never saw them, standing in for {meta.version} (the folds' rule “{rule}”: "
        + "; ".join(versions[c].rstrip(".") for c in results.report["rules"][rule]["components"])
        + ")",
    )
    (Path(bundle) / "metrics-unseen.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=Path(".cache/crops"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ensemble", type=Path, help="write the ensemble of the best rule (or --rule) to this bundle")
    p.add_argument("--rule", help="the rule to write (default: the best mean AUC over the folds every rule covers)")
    p.add_argument("--model-version", default="")
    p.add_argument("--title", default="")
    p.add_argument(
        "--unseen-for",
        type=Path,
        help="write this served bundle's metrics-unseen.json from --rule (its kind of model's fold versions)",
    )
    args = p.parse_args(argv)
    if args.unseen_for and not args.rule:
        p.error("--unseen-for needs --rule: the rule whose components stand in for the bundle")
    results = analyse(args.plan, args.cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results.report, indent=1) + "\n")
    print(json.dumps(results.report, indent=1))
    if args.unseen_for:
        record = write_unseen_for(results, args.rule, args.unseen_for)
        print(f"wrote {args.unseen_for / 'metrics-unseen.json'}: {record['caught']:.1%} caught on average")
    if args.ensemble:
        rule = args.rule or best_rule(results.report)
        _, _, plan = read_plan(args.plan)
        members = plan["members"]
        meta = write_ensemble(
            results, rule, members, args.ensemble, args.model_version, args.title, [Path(d) for d in plan["datasets"]]
        )
        print(f"wrote {args.ensemble} ({meta.version}) with rule {rule!r}")


if __name__ == "__main__":
    main()
