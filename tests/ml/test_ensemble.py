"""An ensemble bundle: members fitted together on val, served as one detector that keeps each member's score."""

import json

import numpy as np
import pytest
from PIL import Image

from detector.ml.inference.bundle import METADATA_FILE, BundleError, read_metadata
from tests.conftest import build_tiny_bundle


def write_val(root, n=16):
    """Fakes that are red or green (each member sees one kind), reals in shades of blue."""
    rows = ["path,label,source,kind,group,split,resized,sha256"]
    rng = np.random.default_rng(0)
    for i in range(n):
        for label, colour, source in (
            ("fake", (200 + rng.integers(0, 50), 20, 60), "red"),
            ("fake", (20, 200 + rng.integers(0, 50), 60), "green"),
            ("real", (rng.integers(0, 120), rng.integers(0, 120), 200), "camera"),
            ("real", (rng.integers(0, 120), rng.integers(0, 120), 120), "camera"),
        ):
            rel = f"val/{label}/{source}{i}-{len(rows)}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (48, 48), tuple(int(c) for c in colour)).save(root / rel)
            rows.append(f"{rel},{label},{source},x,g{len(rows)},val,no,-")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "ml_models"
    red = build_tiny_bundle(folder / "sees-red", version="r-1", kernel=(0.05, 0.0, -0.02))
    green = build_tiny_bundle(folder / "sees-green", version="g-1", kernel=(0.0, 0.05, -0.02))
    return folder, red, green


def test_an_ensemble_that_beats_its_members_is_written_and_serves_with_every_members_score(models, tmp_path):
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.ensemble import fit_ensemble

    folder, red, green = models
    data = write_val(tmp_path / "data")
    out = folder / "both"
    comparison = fit_ensemble([red, green], out, "e-1", [data], progress=False)
    aucs = comparison["val_auc"]
    assert comparison["beats_best_member"] and comparison["rule"] in ("mean", "stacking", "max")
    assert max(aucs["mean"], aucs["stacking (out of fold)"], aucs["max (out of fold)"]) > max(aucs["members"].values())

    meta = read_metadata(out)
    assert meta.is_ensemble and [m["bundle"] for m in meta.members] == ["sees-red", "sees-green"]
    assert not (out / "model.keras").exists()  # it refers to its members instead of copying them
    assert meta.training["calibration"]["split"] == "val" and meta.thresholds.real_below <= meta.thresholds.decision

    detector = Detector(out)
    for colour, expected in (((240, 20, 60), "Deepfake"), ((20, 240, 60), "Deepfake"), ((30, 30, 220), "Real")):
        verdict = detector.judge(Image.new("RGB", (64, 64), colour))  # no face: the centre square is scored
        assert detector.meta.thresholds.label(verdict.fake_probability) == expected
        assert verdict.label == "No face" and verdict.model_version == "e-1"
        assert [s["name"] for s in verdict.faces[0].models] == ["sees-red", "sees-green", "both"]
        assert verdict.faces[0].models[-1]["ensemble"] and verdict.faces[0].models[-1]["label"] == "No face"
    red_score, green_score, _ = detector.judge(Image.new("RGB", (64, 64), (240, 20, 60))).faces[0].models
    assert red_score["version"] == "r-1" and red_score["name"] == "sees-red"
    assert red_score["fake_probability"] > green_score["fake_probability"]  # side by side: the one that sees red
    prepared = detector.prepare(Image.new("RGB", (64, 64), (240, 20, 60)))
    maps = detector.heatmaps(prepared)
    assert maps.shape == (1, 32, 32) and 0.0 <= maps.min() <= maps.max() <= 1.0
    with pytest.raises(BundleError, match="no network of its own"):
        detector.model  # noqa: B018

    from detector.ml.measurement.model_card import render

    card = render(out)
    assert "  - `sees-red` r-1" in card and "| member `sees-green`, refitted by fold |" in card
    assert f"Kept: {comparison['rule']}." in card and "Real below the highest at which at most 10%" in card


def test_no_ensemble_is_written_where_it_does_not_beat_the_best_member(models, tmp_path):
    from detector.ml.training.ensemble import fit_ensemble

    folder, red, _ = models
    data = write_val(tmp_path / "data")
    twin = build_tiny_bundle(folder / "also-red", version="r-2", kernel=(0.05, 0.0, -0.02))
    comparison = fit_ensemble([red, twin], folder / "same", "e-2", [data], progress=False)
    assert not comparison["beats_best_member"] and not (folder / "same").exists()


def test_for_a_leave_one_out_run_a_rule_is_imposed_on_val_without_the_left_out_source(models, tmp_path):
    from detector.ml.training.ensemble import fit_ensemble, main

    folder, red, _ = models
    data = write_val(tmp_path / "data")
    twin = build_tiny_bundle(folder / "also-red", version="r-2", kernel=(0.05, 0.0, -0.02))
    out = folder / "unseen-green"
    comparison = fit_ensemble(
        [red, twin], out, "e-3", [data], progress=False, exclude_sources=("green",), rule="mean", title="Both reds"
    )
    # no gain over the members, but the imposed rule is written, fitted on val without the green fakes
    assert not comparison["beats_best_member"] and comparison["rule_imposed"] and comparison["rule"] == "mean"
    assert comparison["val_without"] == ["green"] and comparison["val_images"] == 16 * 3
    meta = read_metadata(out)
    assert meta.stacking["rule"] == "mean" and [m["weight"] for m in meta.members] == [0.5, 0.5]
    assert meta.training["title"] == "Both reds" and meta.training["val_auc"] == comparison["val_auc"]["mean"]
    assert "green" not in meta.training["calibration"]["by_source"]
    with pytest.raises(ValueError, match="unknown rule 'vote'"):
        fit_ensemble([red, twin], folder / "x", "e-4", [data], progress=False, rule="vote")
    with pytest.raises(SystemExit):
        main(["--member", str(red), "--out", str(folder / "y"), "--model-version", "e-5", "--dataset", str(data),
              "--rule", "vote"])  # fmt: skip


def test_an_ensemble_whose_member_changed_or_went_missing_is_refused(models, tmp_path):
    from detector.ml.training.ensemble import fit_ensemble

    folder, red, green = models
    out = folder / "both"
    fit_ensemble([red, green], out, "e-1", [write_val(tmp_path / "data")], progress=False)
    meta = json.loads((out / METADATA_FILE).read_text())
    meta["members"][1]["version"] = "g-0"
    (out / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="was fitted on sees-green g-0, but that folder holds g-1"):
        read_metadata(out)
    meta["members"][1].update(version="g-1", bundle="gone")
    (out / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="member 'gone'"):
        read_metadata(out)


def test_the_max_rule_takes_the_most_suspicious_member_each_rescaled(models, tmp_path):
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.ensemble import fit_ensemble

    folder, red, green = models
    out = folder / "both"
    fit_ensemble([red, green], out, "e-1", [write_val(tmp_path / "data")], progress=False)
    meta = json.loads((out / METADATA_FILE).read_text())
    meta["stacking"]["rule"] = "max"
    meta["members"][0].update(weight=2.0, offset=-1.0)
    meta["members"][1].update(weight=1.0, offset=0.5)
    (out / METADATA_FILE).write_text(json.dumps(meta))
    combined = Detector(out).combine(np.array([[3.0, 1.0], [-2.0, 0.0]]))
    assert combined.tolist() == [5.0, 0.5]  # max(2*3-1, 1+0.5), max(2*-2-1, 0+0.5)

    from detector.ml.measurement.model_card import render

    assert "the largest of the members' logits" in render(out) and "offset -1.0000" in render(out)


def test_stacking_never_weighs_a_member_against_its_own_evidence():
    from detector.ml.training.ensemble import fit_stacking

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    good = labels * 2.0 + rng.normal(0, 1, 400)
    inverted = -labels * 1.5 + rng.normal(0, 1, 400)  # finds the fakes more real than the reals
    rows = [
        (int(y), "s", f"g{i}", np.array([[a, b]]))
        for i, (y, a, b) in enumerate(zip(labels, good, inverted, strict=True))
    ]
    weights, _ = fit_stacking(rows)
    assert weights[0] > 0 and weights[1] == 0.0


def test_members_that_cut_faces_differently_each_get_their_own_crop(tmp_path):
    """A resized-crop member beside a native-crop one (as the trace model is): one face search, two crops."""
    from detector.ml.inference.predictor import Detector
    from detector.ml.inference.preprocessing import NATIVE, CropSpec
    from detector.ml.training.ensemble import fit_ensemble

    folder = tmp_path / "ml_models"
    red = build_tiny_bundle(folder / "sees-red", version="r-1", kernel=(0.05, 0.0, -0.02))
    green = build_tiny_bundle(folder / "native-green", 16, "g-1", (0.0, 0.05, -0.02), crop_scale=NATIVE)
    out = folder / "both"
    comparison = fit_ensemble([red, green], out, "e-2", [write_val(tmp_path / "data")], progress=False)
    assert comparison["beats_best_member"]
    detector = Detector(out)
    assert detector.crop_specs == [CropSpec(32, 0.2), CropSpec(16, 0.2, NATIVE)]
    image = Image.new("RGB", (64, 64), (20, 240, 60))
    prepared = detector.prepare(image)
    assert prepared.batch().shape == (1, 32, 32, 3) and prepared.batch(CropSpec(16, 0.2, NATIVE)).shape == (
        1,
        16,
        16,
        3,
    )
    red_score, green_score, _ = detector.judge(image).faces[0].models
    assert green_score["fake_probability"] > red_score["fake_probability"]
    assert detector.heatmaps(prepared).shape == (1, 32, 32)  # from the member that cuts the face as shown
