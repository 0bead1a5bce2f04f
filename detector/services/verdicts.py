"""What a verdict means, in words a journalist can repeat, and how it was decided, for the technical reader.

A verdict is never put stronger than the model's own record: a probability is shown in whole
percents and never as 0 % or 100 %, and Real and Deepfake are said by where the score stands among
validation images whose truth is known ("higher than 97 of 100 real faces"), read off the quantiles
the bundle keeps of its validation scores (:func:`..ml.calibration.val_reference`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..ml.inference.calibration import share_below
from ..models import Detection, Label, percent_text


@dataclass(frozen=True)
class Explanation:
    summary: str  # one or two sentences under the verdict
    standing: str = ""  # where the score stands among validation images of known truth ("" where unknown)
    band: str = ""  # for Uncertain: the band the score fell in
    misses: str = ""  # for Real and Uncertain: how often fakes of kinds never trained on get through
    disagreement: str = ""  # where the models of an ensemble do not all say what the verdict says


HEADLINES = {Label.REAL: "No sign of manipulation found"}


def headline(label: str) -> str:
    """What the verdict's heading says: Real is said for what it is (no sign found), never as a clearance; the
    stored and API label stays Real."""
    return HEADLINES.get(label, label)


def misses(facts: dict | None, detection: Detection) -> str:
    """One sentence, right under a Real or Uncertain verdict, of how often this version lets through fakes of kinds
    it never trained on (its out-of-domain folds), so that Real is never read as proof."""
    unseen = facts.get("unseen_kinds") if facts and facts["meta"].version == detection.model_version else None
    if unseen and unseen.get("kinds"):
        kinds = ", ".join(k["title"].lower() for k in unseen["kinds"])
        return (
            f"On fakes of kinds it was never trained on ({kinds}), this version called "
            f"{percent_text(unseen['called_real'])} Real and caught only {percent_text(unseen['caught'])}: "
            "a new kind of fake can look real to it."
        )
    return "It often misses fakes of kinds it was not trained on: a new kind of fake can look real to it."


def disagreement(detection: Detection) -> str:
    """Where an ensemble's members do not all agree with the verdict: which said what (their image-level scores)."""
    members = [m for m in detection.model_scores or [] if not m.get("ensemble") and m.get("label")]
    if len(members) < 2 or detection.label not in (Label.REAL, Label.UNCERTAIN, Label.DEEPFAKE):
        return ""
    others = [m for m in members if m["label"] != detection.label]
    if not others:
        return ""
    said = "; ".join(f"{m['label']} ({percent_text(m['fake_probability'])})" for m in others)
    return f"The models disagree: {len(others)} of {len(members)} said otherwise: {said}."


def out_of_100(share: float) -> int:
    """A share as "N of 100", rounded down and at most 99: never claim every image."""
    return max(0, min(99, math.floor(share * 100 + 1e-9)))


def _reference(detection: Detection, facts: dict | None) -> dict | None:
    """The validation reference of the model that judged the detection, where that model is the one served."""
    if not facts or facts["meta"].version != detection.model_version:
        return None
    reference = facts["meta"].training.get("calibration", {}).get("reference")
    return reference if reference and reference.get("reals_quantiles") else None


def thresholds_of(detection: Detection, facts: dict | None) -> tuple[float | None, float | None]:
    """(Real below, Deepfake from) of the model that judged the detection: as stored with it, or (for detections
    made before Real's was stored) the served bundle's where that judged it; None where it is not known."""
    if detection.real_below is not None:
        return detection.real_below, detection.threshold
    if facts and facts["meta"].version == detection.model_version:
        t = facts["meta"].thresholds
        return t.real_below, t.deepfake_from
    return None, detection.threshold


def explain(detection: Detection, facts: dict | None) -> Explanation | None:
    """The words for a finished detection's verdict; None before one (queued, analysing, failed)."""
    if detection.status != "done":
        return None
    thing = "video" if detection.is_video else "image"
    who = "face track" if detection.is_video else "face"
    if detection.label == Label.NO_FACE:
        return Explanation(
            f"No face was found in this {thing}, so nothing was judged. The detector was trained on faces only and "
            f"says nothing about {thing}s without one: scenery, objects, animals, drawings, or faces too small, "
            "turned away or covered to be found."
        )
    p = detection.fake_probability
    reference = _reference(detection, facts)
    real_below, deepfake_from = thresholds_of(detection, facts)
    if detection.label == Label.UNCERTAIN:
        band = (
            f"between {percent_text(real_below)} and {percent_text(deepfake_from)}"
            if real_below is not None
            else f"below {percent_text(deepfake_from)}"
        )
        return Explanation(
            f"The model cannot tell: its score is too high to call the {thing} real and too low to call it a "
            "deepfake. A person should look at it.",
            band=band,
            misses=misses(facts, detection),
            disagreement=disagreement(detection),
        )
    if detection.label == Label.DEEPFAKE:
        standing = ""
        if reference:
            n = out_of_100(share_below(reference["reals_quantiles"], p))
            standing = (
                f"Its most suspicious {who} scored higher than {n} of 100 real faces held out of training "
                "(faces whose truth is known)."
            )
        return Explanation(
            "The model finds signs of a face swap or a generated face. A person should check before anyone relies "
            "on it.",
            standing,
            disagreement=disagreement(detection),
        )
    standing = ""
    if reference and reference.get("fakes_quantiles"):
        n = out_of_100(1.0 - share_below(reference["fakes_quantiles"], p))
        standing = (
            f"Its most suspicious {who} scored lower than {n} of 100 fake faces held out of training "
            "(faces whose truth is known)."
        )
    return Explanation(
        f"The model finds no sign of a manipulation it knows. That does not prove the {thing} is authentic: it may "
        "be a kind of fake the model has not learnt.",
        standing,
        misses=misses(facts, detection),
        disagreement=disagreement(detection),
    )
