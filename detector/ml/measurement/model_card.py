"""Render a bundle's MODEL_CARD.md from its metadata and the measurements stored beside it.

Reads ``metadata.json``, ``metrics-test.json`` (``evaluate_detector --json``),
``baseline-test.json`` (``python -m detector.ml.training.baseline``), ``face-detectors.json``
(``benchmarks/face_detectors.py``) and, where present, ``metrics-*.json`` of other
evaluations (those of ``evaluate_detector --recompress`` side by side with the test
split's), and writes the card with the hand-written sections from ``notes.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..inference.bundle import read_metadata
from ..inference.engines import HEATMAP_TOLERANCE, export_draws_maps
from ..inference.preprocessing import NATIVE
from .evaluation import fmt_metric, recompressed_note

COLUMNS = (
    ("n", "n"),
    ("auc", "AUC"),
    ("accuracy", "accuracy"),
    ("tpr_at_fpr_1", "TPR@1%FPR"),
    ("tpr_at_fpr_5", "TPR@5%FPR"),
    ("detection_rate", "detected"),
    ("false_accusation_rate", "false accusations"),
    ("uncertain_rate", "uncertain"),
    ("face_found_rate", "face found"),
)


def metrics_table(report: dict) -> str:
    head = "| source | " + " | ".join(h for _, h in COLUMNS) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    rows = [("**overall**", report["overall"])] + sorted(report["by_source"].items())
    rows += [(f"{name} against all reals", m) for name, m in sorted(report.get("against_reals", {}).items())]
    body = ["| " + name + " | " + " | ".join(fmt_metric(m[k]) for k, _ in COLUMNS) + " |" for name, m in rows]
    return "\n".join([head, rule, *body])


def calibration_formula(cal) -> str:
    if cal.upper_slope is None:
        return f"p = sigmoid({cal.slope:.4f} · z {cal.intercept:+.4f}), z the face logit"
    return (
        f"p = sigmoid({cal.slope:.4f} · ln s − {cal.upper_slope:.4f} · ln(1 − s) {cal.intercept:+.4f}), "
        "s = sigmoid(z), z the face logit"
    )


VERDICT_COLUMNS = [(cls, label) for cls in ("reals", "fakes") for label in ("Real", "Uncertain", "Deepfake", "No face")]


def verdict_lines(verdicts: dict) -> list[str]:
    """Each source's reals and fakes split by the verdict they were given."""
    pct = lambda v: "—" if v is None else f"{v:.1%}"  # noqa: E731
    lines = [
        "## Verdicts on the test split: what users were told",
        "",
        "The share of each source's real and fake images given each verdict. A fake called Real is a false "
        "reassurance; a real called Deepfake a false accusation. No face: none was found, so nothing was judged "
        "(— where the evaluation was made before that verdict existed).",
        "",
        "| source | " + " | ".join(f"{cls}: {label}" for cls, label in VERDICT_COLUMNS) + " |",
        "|---" * (len(VERDICT_COLUMNS) + 1) + "|",
    ]
    rows = [("**overall**", verdicts["overall"])] + sorted(verdicts["by_source"].items())
    for name, v in rows:
        cells = [pct(v[cls].get(label)) for cls, label in VERDICT_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def calibration_lines(cal: dict) -> list[str]:
    """The reliability table of ``evaluate_detector``'s calibration block, with what it does and does not say."""
    lines = [
        "## Calibration on the test split: what the probability means",
        "",
        f"Brier score {cal['brier']:.3f}, expected calibration error {cal['ece']:.3f} (the image-weighted mean gap "
        f"between the stated probability and the share of fakes, in {len(cal['bins'])} equal bins). "
        f"{cal['fake_share']:.0%} of these {cal['n']} images are fake, as in the validation split the calibration "
        "was fitted on, so a probability reads as the chance of a fake among images where fakes are that common. "
        "Where fakes are rarer, as among most photos people upload, the same score means a smaller chance.",
        "",
        "| fake probability | images | mean probability | share fake |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b['from']:.0%}–{b['to']:.0%} | {b['n']} | {b['mean_probability']:.3f} | {b['fake_share']:.3f} |"
        for b in cal["bins"]
        if b["n"]
    ]
    return lines + [""]


def interval_lines(test: dict) -> list[str]:
    """Each source's AUC and rates with the counts behind them and their 95 % intervals."""

    def auc(point, ci) -> str:
        return "—" if point is None else f"{point:.3f} ({ci['low']:.3f}–{ci['high']:.3f})"

    def rate(r) -> str:
        return "—" if r is None else f"{r['k']} of {r['n']}: {r['k'] / r['n']:.1%} ({r['low']:.1%}–{r['high']:.1%})"

    resamples = (test["intervals"]["overall"]["auc"] or {}).get("resamples")  # None where no AUC could be computed
    lines = [
        "## How sure are these figures? 95 % intervals on the test split",
        "",
        "Each rate with the count behind it and its Wilson score interval; each AUC with a percentile bootstrap "
        f"interval ({resamples} resamples of the source's images). Where a source has few images, a target met or "
        "missed by its rate may be chance: read the interval.",
        "",
        "| source | AUC | fakes detected | reals falsely accused |",
        "|---|---|---|---|",
    ]
    rows = [("**overall**", test["overall"], test["intervals"]["overall"])] + [
        (name, test["by_source"][name], ci) for name, ci in sorted(test["intervals"]["by_source"].items())
    ]
    for name, m, ci in rows:
        cells = [auc(m["auc"], ci["auc"]), rate(ci["detection_rate"]), rate(ci["false_accusation_rate"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def recompression_lines(test: dict, runs: list[dict]) -> list[str]:
    """Per source, the test metrics as stored beside those of each ``evaluate_detector --recompress`` run."""
    names = ["as stored"] + [
        (f"{r['recompressed']['scale']:.0%} + " if r["recompressed"]["scale"] != 1 else "")
        + f"JPEG {r['recompressed']['jpeg_quality']}"
        for r in runs
    ]
    reports = [test, *runs]
    metrics = (("auc", "AUC"), ("detection_rate", "detected"), ("false_accusation_rate", "false acc."))
    lines = [
        "## The test split re-compressed: does the verdict survive a messaging app?",
        "",
        "The same test images, each changed in memory before analysis (`evaluate_detector --recompress`): "
        + "; ".join(f"**{n}**: {recompressed_note(r['recompressed'])}" for n, r in zip(names[1:], runs, strict=True))
        + ". The sources reached this dataset with different compression (most as JPEG quality 75, gan256 at about "
        "90, the downscaled sources at 95), so a model that had learnt compression instead of faces would lose its "
        "lead here; re-encoding is also what happens to photos passed on by messaging apps and social networks.",
        "",
        "| source | " + " | ".join(f"{h}: {n}" for _, h in metrics for n in names) + " |",
        "|---" * (len(metrics) * len(names) + 1) + "|",
    ]
    for source in ["overall", *sorted(test["by_source"])]:
        picked = [r["overall"] if source == "overall" else r["by_source"].get(source, {}) for r in reports]
        cells = [fmt_metric(m.get(key)) for key, _ in metrics for m in picked]
        lines.append(f"| {'**overall**' if source == 'overall' else source} | " + " | ".join(cells) + " |")
    return lines + [""]


def engine_lines(engines: dict) -> list[str]:
    """How each exported serving form was checked against the Keras weights."""
    lines = []
    for name, e in engines.items():
        c = e["check"]
        lines.append(
            f"- Served with the exported {name} form `{e['file']}` ({e['format']}; sha256 `{e['sha256']}`). "
            f"Checked against the Keras model on {c['inputs']} ({c['faces']} faces): largest difference of the "
            f"fake probability {c['max_probability_difference']:.2g} (tolerance {c['tolerance']}), of the heatmaps "
            f"{c.get('max_heatmap_difference', float('nan')):.2g}"
            + (
                "."
                if export_draws_maps(e)
                else f", past the {HEATMAP_TOLERANCE} allowed: the heatmaps are drawn by Grad-CAM on the Keras model."
            )
        )
    return lines


def crop_words(meta) -> str:
    """What a bundle's network is given, in words."""
    side = f"{meta.input_size}×{meta.input_size} px"
    if meta.crop_scale == NATIVE:
        return (
            f"the centre {side} of the face's square ({meta.face_margin:.0%} margin) at the picture's full "
            "resolution, not resampled (enlarged only where the square is smaller)"
        )
    return f"the face crop, {side}, {meta.face_margin:.0%} margin"


def single_model_lines(meta) -> list[str]:
    """The decision rule and the training run of one network."""
    t = meta.training
    out = [
        "## Decision rule (from `metadata.json`)",
        "",
        f"- Input: {crop_words(meta)}, preprocessing v{meta.preprocessing_version}.",
        f"- Output: {meta.labels['output']}.",
        f"- Calibration: {t.get('calibration', {}).get('method', meta.calibration.method)}, "
        + calibration_formula(meta.calibration)
        + ".",
        "- A face's logit: "
        + ("the mean over its crop and the crop's mirror image." if meta.test_time_flip else "its crop's."),
        f"- Deepfake when p ≥ {meta.thresholds.deepfake_from:.4f}; Real when p < {meta.thresholds.real_below:.4f}; "
        "Uncertain between.",
        f"- Threshold rule: the lowest threshold at which {t.get('calibration', {}).get('threshold_rule', '')}.",
        f"- Weights sha256: `{meta.weights_sha256}`.",
        *engine_lines(meta.engines),
        "",
    ]
    stages = []
    prev, started = t.get("previous_stage"), "It started"
    while prev:  # newest first; each stage started from the weights of the one below it
        stages.append(
            f"- {started} from the weights of version {prev['version']}, trained with "
            f"{json.dumps(prev['recipe'])} in {prev['minutes']} minutes (val AUC {prev['val_auc']:.4f})."
        )
        prev, started = prev.get("previous_stage"), f"Version {prev['version']} had started"
    if stages:
        stages.append(f"- {t['minutes_total']} minutes of training in all stages.")
    out += [
        "## Training run",
        "",
        *(
            [
                f"- Version {meta.version} keeps the weights of version {t['same_weights_as']} unchanged; only how "
                "a face is scored, the calibration and the thresholds differ (refitted on val). The training "
                f"below is {t['same_weights_as']}'s."
            ]
            if t.get("same_weights_as")
            else []
        ),
        f"- {t['train_images']} training images, {t['val_images']} validation images; epoch chosen on val: "
        f"{t['chosen']} (val AUC of the main face {t['val_auc']:.4f}).",
        f"- Training time: {t['minutes']} minutes on {t['machine']} (no GPU), finished {t['finished']}.",
        f"- Recipe: {json.dumps(t['recipe'])}.",
        "- Per epoch: "
        + "; ".join(
            f"{h.get('stage', 'epoch')} {h['epoch']}: loss {h.get('train_loss', h.get('loss')):.4f}, "
            f"val AUC {h['val_auc']:.4f}"
            for h in t["history"]
        )
        + ".",
        *stages,
        "",
    ]
    return out


def ensemble_lines(meta) -> list[str]:
    """The decision rule of an ensemble: its members, how their logits are combined, and the comparison on val."""
    t = meta.training
    stacking = meta.stacking
    out = [
        "## Decision rule (from `metadata.json`)",
        "",
        f"- Input: every member's own crop of the same face (from one face search), preprocessing "
        f"v{meta.preprocessing_version}" + (", and its mirror image." if meta.test_time_flip else "."),
        "- Members (bundles beside this one, checked by version when loaded):",
        *[
            f"  - `{m['bundle']}` {m['version']} ({m.get('title', '')}): weight {m['weight']:.4f}"
            + (f", offset {m['offset']:+.4f}" if "offset" in m else "")
            for m in meta.members
        ],
        "- Combined face logit: "
        + (
            "the largest of the members' logits, each times its weight plus its offset."
            if stacking["rule"] == "max"
            else f"{stacking['rule']} of the members' logits, intercept {stacking['intercept']:+.4f}."
        ),
        f"- Calibration: {t['calibration']['method']} ({t['calibration'].get('fitted_on', '')}), "
        + calibration_formula(meta.calibration)
        + ".",
        f"- Deepfake when p ≥ {meta.thresholds.deepfake_from:.4f}; Real when p < {meta.thresholds.real_below:.4f}; "
        "Uncertain between.",
        f"- Threshold rules: Deepfake from the lowest threshold at which {t['calibration']['threshold_rule']}; "
        f"Real below the highest at which {t['calibration']['real_rule']}.",
        "",
        f"## How the rule was chosen ({t['val_images']} val images)",
        "",
        "| on val | AUC |",
        "|---|---|",
    ]
    aucs = t["comparison"]["val_auc"]
    out += [f"| member `{name}` | {auc:.4f} |" for name, auc in aucs["members"].items()]
    out += [
        f"| member `{name}`, refitted by fold | {auc:.4f} |" for name, auc in aucs["members refitted by fold"].items()
    ]
    out += [
        f"| mean of the logits | {aucs['mean']:.4f} |",
        f"| stacking, out of fold | {aucs['stacking (out of fold)']:.4f} |",
    ]
    out += ["", f"Kept: {t['comparison']['rule']}.", ""]
    return out


def interval_words(record: dict) -> str:
    """An AUC of a fold with its 95 % interval and its counts (``folds.auc_record``)."""
    if record.get("auc") is None:
        return "n/a"
    low, high = record["interval"] or (float("nan"), float("nan"))
    return f"{record['auc']:.3f} [{low:.3f}, {high:.3f}]"


def clip_head_lines(meta) -> list[str]:
    """The decision rule and the fit of a linear head on CLIP features."""
    t, engine = meta.training, meta.engines["clip"]
    encoder = engine["encoder"]
    by_source = ", ".join(f"{k} {v}" for k, v in sorted(t.get("train_by_source", {}).items()))
    return [
        "## Decision rule (from `metadata.json`)",
        "",
        f"- Input: the face crop, {meta.input_size}×{meta.input_size} px, {meta.face_margin:.0%} margin, "
        f"preprocessing v{meta.preprocessing_version}, read by the CLIP ViT-B/16 image encoder `{encoder['file']}` "
        f"from {encoder['from']} (sha256 `{encoder['sha256']}`, checked when loaded; {encoder['runtime']}).",
        f"- Head: {engine['format']} (`{engine['file']}`, sha256 `{engine['sha256']}`).",
        f"- Calibration: {t.get('calibration', {}).get('method', meta.calibration.method)}, "
        + calibration_formula(meta.calibration)
        + ".",
        f"- Deepfake when p ≥ {meta.thresholds.deepfake_from:.4f}; Real when p < {meta.thresholds.real_below:.4f}; "
        "Uncertain between.",
        "- No heatmap: the encoder is not a network of this project's, so there is no map of the face to draw.",
        "",
        "## Fit",
        "",
        f"- {t['train_images']} training faces ({t['dataset']}), at most {t['per_source_limit']} of each source "
        f"and label: {by_source}.",
        f"- {t['self_blended_pseudo_fakes']} self-blended copies of real training faces as extra fakes "
        f"(weight share {t['self_blend_share']:.0%}); logistic regression, C = {t['c']}.",
        *([f"- Sources left out: {', '.join(t['excluded_sources'])}."] if t.get("excluded_sources") else []),
        f"- {t.get('minutes', '?')} minutes on {t['machine']}, finished {t['finished']}.",
        "",
    ]


def folds_lines(report: dict, kept: str) -> list[str]:
    """Every component and every rule on every out-of-domain fold, with intervals: what chose ``kept``."""
    folds = report["folds"]
    head = "| | " + " | ".join(f["title"] for f in folds.values()) + " |"
    rule = "|---|" + "---|" * len(folds)
    out = [
        "## How it was chosen: the out-of-domain folds",
        "",
        "Each fold keeps a kind of data out of training and scores its fakes (val and test splits together) against "
        "the reals of the same source, with each component's version that never saw that kind. AUC with its 95 % "
        "bootstrap interval; a rule is fitted on the other folds and scored on the one left out.",
        "",
        head,
        rule,
    ]
    for name in report["components"]:
        cells = [interval_words(f["components"][name]) if name in f["components"] else "—" for f in folds.values()]
        out.append(f"| component `{name}` | " + " | ".join(cells) + " |")
    for name, r in report["rules"].items():
        cells = [interval_words(r["folds"][k]) if k in r["folds"] else "—" for k in folds]
        out.append(f"| rule **{name}**{' (kept)' if name == kept else ''} | " + " | ".join(cells) + " |")
    out += ["", "Components:", *[f"- `{k}`: {v}" for k, v in report["components"].items()], ""]
    return out


def unseen_lines(unseen: dict) -> list[str]:
    """``metrics-unseen.json``: what this version's thresholds do to fakes of kinds it never trained on."""
    out = [
        "## Fakes of kinds it never trained on (`metrics-unseen.json`)",
        "",
        f"{unseen['what'][0].upper()}{unseen['what'][1:]}; this version's calibration and thresholds.",
        "",
        "| kind | fakes | reals | AUC [95 %] | caught (Deepfake) | let through (Real) | reals called Deepfake |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {k['title']} | {k['fakes']} | {k['reals']} | {interval_words(k)} | {k['caught']:.1%} | "
        f"{k['called_real']:.1%} | {k['reals_accused']:.1%} |"
        for k in unseen["kinds"]
    ]
    return [
        *out,
        "",
        f"On average over these kinds {unseen['caught']:.1%} of the fakes are caught and "
        f"{unseen['called_real']:.1%} are called Real.",
        "",
    ]


def folds_ensemble_lines(meta) -> list[str]:
    """An ensemble chosen on the out-of-domain folds: members, hinges, thresholds and the folds' table."""
    t, stacking = meta.training, meta.stacking
    chosen = t["calibration"].get("real_from_folds", {})
    out = [
        "## Decision rule (from `metadata.json`)",
        "",
        f"- Input: every member's own crop of the same face (from one face search), preprocessing "
        f"v{meta.preprocessing_version}.",
        "- Members (bundles beside this one, checked by version when loaded):",
        *[
            f"  - `{m['bundle']}` {m['version']} ({m.get('title', '')}): weight {m['weight']:.4f}"
            + (
                f", a specialist: counts only above its logit {m['hinge_at']:+.3f} (its score of all but the top "
                "few val reals), so it can only raise a face's score"
                if m.get("hinge_at") is not None
                else ""
            )
            for m in meta.members
        ],
        f"- Combined face logit: the weighted sum of the members' logits, intercept {stacking['intercept']:+.4f} "
        f"(rule “{stacking['fit']}”, weights fitted on the out-of-domain folds, never negative).",
        f"- Calibration: {t['calibration']['method']} ({t['calibration'].get('fitted_on', 'in-domain val')}), "
        + calibration_formula(meta.calibration)
        + ".",
        f"- Deepfake when p ≥ {meta.thresholds.deepfake_from:.4f} (the lowest threshold at which "
        f"{t['calibration']['threshold_rule']}).",
        f"- Real when p < {meta.thresholds.real_below:.4f}: {chosen.get('rule', t['calibration'].get('real_rule'))}"
        + (
            f" (val alone gave {chosen['from_val']:.4f}; per fold: "
            + ", ".join(f"{k} {v:.4f}" for k, v in chosen["per_fold"].items())
            + ")."
            if chosen
            else "."
        ),
        "",
    ]
    return out + folds_lines(t["folds"], stacking["fit"])


def render(bundle: Path) -> str:
    meta = read_metadata(bundle)
    load = lambda name: json.loads((bundle / name).read_text()) if (bundle / name).is_file() else None  # noqa: E731
    test, baseline, faces = load("metrics-test.json"), load("baseline-test.json"), load("face-detectors.json")
    notes = (bundle / "notes.md").read_text() if (bundle / "notes.md").is_file() else ""
    others = {p.name: json.loads(p.read_text()) for p in sorted(bundle.glob("metrics-*.json"))}
    others.pop("metrics-test.json", None)
    unseen = others.pop("metrics-unseen.json", None)
    recompressed_runs = [r for r in others.values() if r.get("recompressed")]
    out = [f"# Model card: {meta.name} {meta.version}", "", notes.split("<!-- results -->")[0].strip(), ""]
    if meta.is_ensemble and meta.stacking.get("rule") == "folds":
        out += folds_ensemble_lines(meta)
    elif meta.is_ensemble:
        out += ensemble_lines(meta)
    elif "clip" in meta.engines:
        out += clip_head_lines(meta)
    else:
        out += single_model_lines(meta)
    if test:
        out += [
            "## Test split, per source (`evaluate_detector --split test`)",
            "",
            metrics_table(test),
            "",
            "![ROC curves on the test split](roc-test.png)",
            "",
        ]
        if test.get("intervals"):
            out += interval_lines(test)
        if test.get("verdicts"):
            out += verdict_lines(test["verdicts"])
        if test.get("calibration"):
            out += calibration_lines(test["calibration"])
        if recompressed_runs:
            out += recompression_lines(test, recompressed_runs)
    if unseen:
        out += unseen_lines(unseen)
    if baseline:
        out += [
            "## Baseline: the seed's approach, measured the same way",
            "",
            "Frozen ImageNet EfficientNet-Lite0 features of the whole image (no face crop), a logistic head "
            "fitted on train, threshold 0.5 (`python -m detector.ml.training.baseline`).",
            "",
            metrics_table(baseline),
            "",
        ]
    if faces:
        out += [
            f"## Face detector: recall on {faces['images']} `{faces['split']}` images and speed",
            "",
            "Every dataset image shows a face, so recall is the share of images where one was found. "
            "Median time per image on one thread of this machine.",
            "",
            "| detector | recall | ms per image |",
            "|---|---|---|",
        ]
        out += [f"| {name} | {d['recall']:.3f} | {d['ms_median']:.1f} |" for name, d in faces["detectors"].items()]
        out += [""]
    for name, extra in others.items():
        if not extra.get("recompressed"):
            out += [f"## Other evaluation: `{name}`", "", metrics_table(extra), ""]
    if "<!-- results -->" in notes:
        out += [notes.split("<!-- results -->")[1].strip(), ""]
    return "\n".join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    args = p.parse_args(argv)
    (args.bundle / "MODEL_CARD.md").write_text(render(args.bundle))
    print(f"wrote {args.bundle / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
