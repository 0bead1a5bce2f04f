"""The out-of-domain folds: what each keeps out, rules fitted on the other folds, the Real threshold from unseen
fakes, and the ensemble they write."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from detector.ml.inference.calibration import Calibration, Thresholds
from detector.ml.measurement.model_card import render
from detector.ml.training import folds
from tests.conftest import build_tiny_bundle
from tests.ml.test_ensemble import write_val


def test_each_fold_holds_out_its_fakes_against_the_reals_of_the_same_source():
    labels = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    sources = np.array(["dfdc", "dfdc", "ffpp_faceswap", "ffpp_real", "stylegan", "ffhq", "celeba", "gan256"])
    assert folds.FOLD_BY_NAME["dfdc"].held_out(labels, sources).tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert folds.FOLD_BY_NAME["faceswap"].held_out(labels, sources).tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert folds.FOLD_BY_NAME["stylegan"].held_out(labels, sources).tolist() == [0, 0, 0, 0, 1, 1, 1, 0]
    assert "gan256" not in folds.FOLD_BY_NAME["stylegan"].left_out  # GAN portraits stay in training
    assert folds.FOLD_BY_NAME["ffpp"].left_out >= {"ffpp_real", "ffpp_faceswap"}


def test_an_auc_comes_with_an_interval_that_holds_it():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 60 + [0] * 60)
    scores = np.concatenate([rng.normal(1, 1, 60), rng.normal(0, 1, 60)])
    record = folds.auc_record(labels, scores)
    low, high = record["interval"]
    assert low < record["auc"] < high and (record["fakes"], record["reals"]) == (60, 60)


def synthetic_rows(seed=0):
    """Three folds: component a sees the fakes of the first two, b those of the third; c is noise."""
    rng = np.random.default_rng(seed)
    rows = {}
    for name, seer in (("dfdc", 0), ("ffpp", 0), ("faceswap", 1)):
        y = np.array([1] * 80 + [0] * 80)
        x = rng.normal(0, 1, (160, 3))
        x[y == 1, seer] += 2.5
        rows[name] = (x, y)
    return rows


def test_a_rule_is_fitted_on_the_other_folds_and_never_weighs_against_evidence():
    rows = synthetic_rows()
    held, (weights, _) = folds.cross_fitted_rule(rows)
    assert set(held) == {"dfdc", "ffpp", "faceswap"} and all(len(v) == 160 for v in held.values())
    assert (weights >= 0).all() and weights[0] > 0 and weights[1] > 0
    # the third fold was scored by a rule fitted on the first two, which never saw b's evidence matter
    assert folds.auc(rows["faceswap"][1], held["faceswap"]) < folds.auc(rows["dfdc"][1], held["dfdc"])


def test_a_fold_is_never_scored_by_a_rule_fitted_on_a_fold_that_holds_out_the_same_images():
    by = folds.FOLD_BY_NAME
    assert by["faceswap"].shares_images_with(by["ffpp"]) and by["stylegan"].shares_images_with(by["sdfd"])
    assert not by["dfdc"].shares_images_with(by["ffpp"]) and not by["ffpp"].shares_images_with(by["stylegan"])
    rows = synthetic_rows()
    held, _ = folds.cross_fitted_rule(rows)
    # FaceSwap's fakes and reals are in the FaceForensics++ fold: only the DFDC fold fits the rule that scores it
    w, b = folds.fit_nonnegative(*folds.balanced({"dfdc": rows["dfdc"]}))
    assert np.allclose(held["faceswap"], rows["faceswap"][0] @ w + b)
    w, b = folds.fit_nonnegative(*folds.balanced({"ffpp": rows["ffpp"], "faceswap": rows["faceswap"]}))
    assert np.allclose(held["dfdc"], rows["dfdc"][0] @ w + b)


def test_rules_are_compared_on_the_folds_every_one_of_them_was_scored_on():
    record = lambda auc: {"auc": auc}  # noqa: E731
    rules = {
        "everywhere": {"folds": {"dfdc": record(0.70), "ffpp": record(0.80), "stylegan": record(0.99)}},
        "networks": {"folds": {"dfdc": record(0.75), "ffpp": record(0.82)}},
    }
    assert folds.common_folds(rules) == ["dfdc", "ffpp"]
    for r in rules.values():
        r["mean_auc_on_common_folds"] = np.mean([r["folds"][k]["auc"] for k in ("dfdc", "ffpp")])
    assert folds.best_rule({"rules": rules}) == "networks"  # not "everywhere" for its easy extra fold


def test_a_specialist_counts_only_above_its_hinge():
    x = np.array([[0.0, -3.0], [0.0, 1.0], [0.0, 4.0]])
    assert folds._transform(["net", "sbi"], {"sbi": 2.0})(x)[:, 1].tolist() == [0.0, 0.0, 2.0]


def test_the_real_threshold_lets_at_most_a_tenth_of_each_folds_unseen_fakes_through():
    rng = np.random.default_rng(1)
    held = {}
    for name, shift in (("dfdc", 0.0), ("faceswap", -2.0)):
        y = np.array([1] * 200 + [0] * 200)
        held[name] = (np.concatenate([rng.normal(1 + shift, 1, 200), rng.normal(-1, 1, 200)]), y)
    chosen, points = folds.real_threshold_from_folds(Calibration(), held)
    assert chosen == min(points.values()) == points["faceswap"]
    for logits, y in held.values():
        probs = np.array([Calibration().probability(float(z)) for z in logits[y == 1]])
        assert (probs < chosen).mean() <= 0.10


def test_the_ensemble_of_the_folds_is_written_with_its_hinge_and_its_unseen_figures(tmp_path):
    from detector.ml.inference.bundle import read_metadata
    from detector.ml.inference.predictor import Detector

    folder = tmp_path / "ml_models"
    red = build_tiny_bundle(folder / "sees-red", version="r-1", kernel=(0.05, 0.0, -0.02))
    green = build_tiny_bundle(folder / "sees-green", version="g-1", kernel=(0.0, 0.05, -0.02))
    blue = build_tiny_bundle(folder / "blend", version="b-1", kernel=(0.0, 0.0, 0.01))
    data = write_val(tmp_path / "data")
    rows = synthetic_rows()
    held, (weights, intercept) = folds.cross_fitted_rule(rows, folds._transform(["cnn", "clip", "sbi"], {"sbi": 0.5}))
    report = {
        "components": {"cnn": "the networks", "clip": "a head on CLIP features", "sbi": "self-blends"},
        "folds": {
            k: {
                "title": folds.FOLD_BY_NAME[k].title,
                "components": {c: folds.auc_record(y, x[:, i]) for i, c in enumerate(["cnn", "clip", "sbi"])},
            }
            for k, (x, y) in rows.items()
        },
        "rules": {
            "cnn + clip + sbi hinge": {
                "weights": dict(zip(["cnn", "clip", "sbi"], map(float, weights), strict=True)),
                "intercept": intercept,
                "hinges": {"sbi": {"limit": 0.01, "at": 0.5}},
                "folds": {k: folds.auc_record(rows[k][1], v) for k, v in held.items()},
            }
        },
    }
    results = folds.Results(report, {"cnn + clip + sbi hinge": {k: (v, rows[k][1]) for k, v in held.items()}}, None)
    members = {"cnn": [str(red), str(green)], "clip": [str(green)], "sbi": [str(blue)]}
    out = folder / "ensemble-folds"
    folds.write_ensemble(results, "cnn + clip + sbi hinge", members, out, "e-9", "Test ensemble", [data])
    meta = read_metadata(out)
    kept = {m["bundle"]: m for m in meta.members}
    assert meta.stacking["rule"] == "folds" and meta.training["title"] == "Test ensemble"
    if weights[2] > 0:
        assert kept["blend"]["hinge_at"] == 0.5
    assert kept["sees-red"]["weight"] == pytest.approx(weights[0] / 2)
    record = json.loads((out / "metrics-unseen.json").read_text())
    assert {k["name"] for k in record["kinds"]} == {"dfdc", "ffpp", "faceswap"}
    assert 0 <= record["called_real"] <= 1 and meta.thresholds.real_below <= meta.thresholds.deepfake_from
    chosen = meta.training["calibration"]["real_from_folds"]
    assert chosen["chosen"] == meta.thresholds.real_below <= chosen["from_val"]
    verdict = Detector(out).judge(Image.new("RGB", (64, 64), (240, 20, 60)))
    assert [m["version"] for m in verdict.faces[0].models][-1] == "e-9"
    assert isinstance(Thresholds(**json.loads((out / "metadata.json").read_text())["thresholds"]), Thresholds)
    card = render(out)
    assert "rule **cnn + clip + sbi hinge** (kept)" in card and "| component `clip` |" in card
    assert "DFDC left out" in card
    assert ("a specialist: counts only above its logit" in card) == (weights[2] > 0)
    assert "## Fakes of kinds it never trained on" in card and "let through (Real)" in card


def test_a_served_bundle_gets_its_unseen_figures_from_its_kind_of_models_fold_versions(tmp_path):
    from detector.ml.inference.bundle import read_metadata

    bundle = build_tiny_bundle(tmp_path / "served", version="s-1")
    meta = read_metadata(bundle)
    rows = synthetic_rows()
    held = {k: (x[:, 0], y) for k, (x, y) in rows.items()}
    report = {
        "components": {"cnn": "the networks; 3.0.2 without DFDC stands in on the DFDC fold"},
        "rules": {
            "cnn alone": {"components": ["cnn"], "folds": {k: folds.auc_record(y, z) for k, (z, y) in held.items()}}
        },
    }
    record = folds.write_unseen_for(folds.Results(report, {"cnn alone": held}, None), "cnn alone", bundle)
    assert (
        json.loads((bundle / "metrics-unseen.json").read_text())["kinds"][0]["caught"] == record["kinds"][0]["caught"]
    )
    assert "3.0.2 without DFDC" in record["what"] and "standing in for s-1" in record["what"]
    z, y = held["dfdc"]
    probs = np.array([meta.calibration.probability(float(v)) for v in z])
    dfdc = next(k for k in record["kinds"] if k["name"] == "dfdc")
    assert dfdc["caught"] == pytest.approx((probs[y == 1] >= meta.thresholds.deepfake_from).mean())
    assert dfdc["reals_accused"] == pytest.approx((probs[y == 0] >= meta.thresholds.deepfake_from).mean())
