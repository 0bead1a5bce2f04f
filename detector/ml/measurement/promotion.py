"""Is a new bundle at least as good as the one serving? Both scored on the same images, compared by their intervals.

For each evaluation set (a dataset's val or test split, the reviewed uploads' test part) both
bundles are scored as ``evaluate_detector`` scores them (:func:`.evaluation.score_samples`,
:func:`.evaluation.report`). The new one is *worse beyond the sampling error* on a set where
the upper end of its AUC's 95 % bootstrap interval lies below the serving bundle's AUC, or the
lower end of its false-accusation rate's Wilson interval lies above the serving bundle's rate.
A new bundle worse on any set is refused, with each reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dataset import Sample
from .evaluation import report, score_samples


@dataclass
class SetComparison:
    name: str  # e.g. "faces val"
    images: int
    new: dict  # {"auc", "auc_low", "auc_high", "far", "far_low", "far_high"} (None where not computable)
    old: dict
    reasons: list[str] = field(default_factory=list)

    @property
    def worse(self) -> bool:
        return bool(self.reasons)


def _figures(detector, samples: list[Sample]) -> dict:
    scores = score_samples(detector, samples, progress=False)
    rep = report(scores, detector.meta.thresholds.decision, detector.version)
    ci = rep["intervals"]["overall"]
    auc, far = ci.get("auc") or {}, ci.get("false_accusation_rate") or {}
    return {
        "auc": rep["overall"]["auc"],
        "auc_low": auc.get("low"),
        "auc_high": auc.get("high"),
        "far": rep["overall"]["false_accusation_rate"],
        "far_low": far.get("low"),
        "far_high": far.get("high"),
    }


def compare(new, old, sets: dict[str, list[Sample]]) -> list[SetComparison]:
    """Score both detectors on every set and say where the new one is worse beyond the sampling error."""
    out = []
    for name, samples in sets.items():
        if not samples:
            continue
        n, o = _figures(new, samples), _figures(old, samples)
        c = SetComparison(name, len(samples), n, o)
        if n["auc_high"] is not None and o["auc"] is not None and n["auc_high"] < o["auc"]:
            c.reasons.append(
                f"{name}: AUC {n['auc']:.3f} (95 % interval {n['auc_low']:.3f}-{n['auc_high']:.3f}) is below the "
                f"serving version's {o['auc']:.3f}"
            )
        if n["far_low"] is not None and o["far"] is not None and n["far_low"] > o["far"]:
            c.reasons.append(
                f"{name}: it accuses {n['far']:.1%} of the reals (95 % interval {n['far_low']:.1%}-"
                f"{n['far_high']:.1%}), above the serving version's {o['far']:.1%}"
            )
        out.append(c)
    return out
