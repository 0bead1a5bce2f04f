"""The detect and evaluate_detector commands, on the tiny real bundle."""

import io
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from detector.ml.inference.preprocessing import decode_image
from detector.ml.measurement.dataset import read_manifest
from detector.ml.measurement.evaluation import recompressed
from tests.conftest import image_bytes


def write_image(path, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), color).save(path)
    return path


def write_val_set(root, n, source="gen", first_group=0):
    """A val-only manifest dataset of ``n`` red fakes and ``n`` blue reals, one group per pair."""
    rows = ["path,label,source,kind,group,split,resized,sha256"]
    for i in range(n):
        for label, color in (("fake", (150 + i * 10, 0, 0)), ("real", (i * 5, 0, 200))):
            rel = f"val/{label}/{label}{i}.png"
            write_image(root / rel, color)
            rows.append(f"{rel},{label},{source},x,g{i + first_group},val,no,-")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_detect_prints_one_json_line_per_file(tiny_detector, tmp_path, capsys):
    red = write_image(tmp_path / "red.png", (250, 0, 0))
    blue = write_image(tmp_path / "blue.png", (0, 0, 250))
    call_command("detect", str(red), str(blue), "--json")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # Plain colours hold no face: no verdict, and no probability claimed for the image.
    assert [line["label"] for line in lines] == ["No face", "No face"]
    assert lines[0]["fake_probability"] is None and lines[0]["confidence"] is None and lines[0]["faces"] == []
    assert set(lines[0]) == {"file", "label", "fake_probability", "confidence", "faces"}


def test_detect_reports_bad_files_and_still_processes_the_others(tiny_detector, tmp_path, capsys):
    text = tmp_path / "notes.jpg"
    text.write_text("this is text")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(image_bytes("JPEG", size=(400, 300))[:800])
    good = write_image(tmp_path / "good.png", (250, 0, 0))
    with pytest.raises(CommandError, match="2 of 3") as err:
        call_command("detect", str(text), str(truncated), str(good))
    assert err.value.returncode == 2
    captured = capsys.readouterr()
    assert "good.png: No face" in captured.out
    assert "notes.jpg: not analysed" in captured.err and "cut.jpg: not analysed" in captured.err


def test_evaluate_detector_on_a_generated_folder(tiny_detector, tmp_path, capsys):
    for i in range(3):
        write_image(tmp_path / "set_a" / "fake" / f"f{i}.png", (250, 10 * i, 0))
        write_image(tmp_path / "set_a" / "real" / f"r{i}.png", (0, 10 * i, 250))
        write_image(tmp_path / "set_b" / "real" / f"r{i}.jpg", (10 * i, 0, 240))
        write_image(tmp_path / "set_c" / "fake" / f"f{i}.png", (240, 0, 10 * i))
    roc = tmp_path / "roc.png"
    call_command("evaluate_detector", str(tmp_path), "--by-folder", "--json", "--roc", str(roc))
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "tiny-1"
    overall = report["overall"]
    assert overall["n"] == 12 and overall["auc"] == 1.0
    # A source of fakes alone is ranked against every real of the set (a method's AUC).
    assert set(report["against_reals"]) == {"set_c"}
    method = report["against_reals"]["set_c"]
    assert method["n"] == 3 + 6 and method["auc"] == 1.0
    assert method["auc_interval"]["high"] == 1.0
    # Plain colours hold no face: the scores rank them (the AUC), but the served verdict is No face for every
    # one, so none is counted caught or accused.
    assert overall["face_found_rate"] == 0.0 and report["verdicts"]["overall"]["fakes"]["No face"] == 1.0
    assert overall["detection_rate"] == 0.0 and overall["false_accusation_rate"] == 0.0
    assert report["by_source"]["set_b"]["auc"] is None  # one class only
    assert report["by_source"]["set_b"]["detection_rate"] is None
    assert report["by_source"]["set_a"]["tpr_at_fpr_1"] == 1.0
    calibration = report["calibration"]
    assert calibration["n"] == 12 and calibration["fake_share"] == pytest.approx(6 / 12)
    assert sum(b["n"] for b in calibration["bins"]) == 12 and len(calibration["bins"]) == 10
    verdicts = report["verdicts"]
    assert verdicts["overall"]["fakes"] == {"Real": 0.0, "Uncertain": 0.0, "Deepfake": 0.0, "No face": 1.0}
    assert verdicts["by_source"]["set_b"]["reals"]["No face"] == 1.0
    assert set(verdicts["by_source"]["set_b"]["fakes"].values()) == {None}
    spread = report["intervals"]
    assert spread["overall"]["detection_rate"]["k"] == 0 and spread["overall"]["detection_rate"]["n"] == 6
    assert spread["overall"]["detection_rate"]["low"] == 0.0 < spread["overall"]["detection_rate"]["high"]
    assert spread["by_source"]["set_b"]["auc"] is None and spread["by_source"]["set_b"]["detection_rate"] is None
    assert roc.stat().st_size > 1000


def test_evaluate_detector_table_and_empty_folder(tiny_detector, tmp_path, capsys):
    write_image(tmp_path / "real" / "a.png", (0, 0, 250))
    write_image(tmp_path / "fake" / "b.png", (250, 0, 0))
    write_image(tmp_path / "swap" / "fake" / "c.png", (240, 0, 10))
    call_command("evaluate_detector", str(tmp_path), "--by-folder")
    out = capsys.readouterr().out
    assert "overall" in out and "false-acc." in out
    assert "expected calibration error" in out and "for a mix of 67% fakes" in out
    assert "each source of fakes against all the reals:" in out and "  swap: AUC 1.000" in out
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no images"):
        call_command("evaluate_detector", str(tmp_path / "empty"))


def test_recompressed_gives_any_image_the_same_jpeg_compression():
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    image = Image.fromarray(pixels)
    direct = io.BytesIO()
    image.save(direct, "JPEG", quality=75)
    out = recompressed(image, quality=75)
    assert out.mode == "RGB" and out.size == (64, 48)
    assert np.array_equal(np.asarray(out), np.asarray(decode_image(direct.getvalue())))
    assert np.abs(np.asarray(out, int) - pixels).mean() > 1  # JPEG at 75 does change noise
    assert recompressed(image, quality=75, scale=0.5).size == (32, 24)
    with pytest.raises(ValueError, match="scale"):
        recompressed(image, quality=75, scale=1.5)


def test_evaluate_detector_can_recompress_every_image_first(tiny_detector, tmp_path, capsys):
    for i in range(3):
        write_image(tmp_path / "fake" / f"f{i}.png", (250, 10 * i, 0))
        write_image(tmp_path / "real" / f"r{i}.png", (0, 10 * i, 250))
    call_command("evaluate_detector", str(tmp_path), "--json", "--recompress", "75", "--scale", "0.9")
    report = json.loads(capsys.readouterr().out)
    assert report["recompressed"] == {"jpeg_quality": 75, "scale": 0.9}
    assert report["overall"]["n"] == 6 and report["overall"]["auc"] == 1.0  # flat colours survive JPEG
    call_command("evaluate_detector", str(tmp_path), "--recompress", "40")
    assert "re-encoded as JPEG at quality 40 before analysis" in capsys.readouterr().out
    with pytest.raises(CommandError, match="needs --recompress"):
        call_command("evaluate_detector", str(tmp_path), "--scale", "0.5")
    with pytest.raises(CommandError, match="quality from 1 to 95"):
        call_command("evaluate_detector", str(tmp_path), "--recompress", "0")


def test_calibration_is_fitted_on_val_through_the_serving_path(tiny_bundle, tmp_path):
    import shutil

    from detector.ml.inference.bundle import read_metadata
    from detector.ml.training.calibration import calibrate_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    root = tmp_path / "data"
    rows = ["path,label,source,kind,group,split,resized,sha256"]
    for i in range(12):
        for label, color in (("fake", (200 + i * 4, 0, 40)), ("real", (40, 0, 200 + i * 4))):
            rel = f"val/{label}/{label}{i}.png"
            write_image(root / rel, color)
            rows.append(f"{rel},{label},gen,x,g{i},val,no,-")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    meta = calibrate_bundle(bundle, read_manifest(root, "val"), max_far=0.0)
    assert read_metadata(bundle).calibration == meta.calibration  # written, and the checksum still holds
    assert meta.calibration.slope > 0  # higher logit, more likely fake
    assert meta.training["calibration"]["images"] == 24
    assert meta.thresholds.label(meta.calibration.probability(20.0)) == "Deepfake"
    assert meta.thresholds.label(meta.calibration.probability(-20.0)) == "Real"


def test_the_threshold_bounds_false_accusations_overall_and_per_source():
    import numpy as np

    from detector.ml.training.calibration import choose_threshold

    rng = np.random.default_rng(0)
    probs = np.concatenate([rng.uniform(0, 0.5, 100), rng.uniform(0, 0.9, 100), rng.uniform(0.5, 1, 100)])
    labels = np.array([0] * 200 + [1] * 100)
    sources = np.array(["easy"] * 100 + ["hard"] * 100 + ["fake"] * 100)
    t = choose_threshold(probs, labels, sources, max_far=0.05)
    assert np.mean(probs[100:200] >= t) <= 0.05  # the harder real source sets it
    assert np.mean(probs[100:200] >= np.nextafter(t, 0) - 0.01) > 0.05  # and no higher than needed


def test_the_lower_threshold_bounds_the_fakes_called_real():
    import numpy as np

    from detector.ml.inference.calibration import Thresholds
    from detector.ml.training.calibration import choose_real_below, rates_by_source

    rng = np.random.default_rng(1)
    probs = np.concatenate([rng.uniform(0, 0.3, 100), rng.uniform(0.05, 1, 200)])
    labels = np.array([0] * 100 + [1] * 200)
    lower = choose_real_below(probs, labels, 0.10, upper=0.9)
    fakes = probs[labels == 1]
    assert np.mean(fakes < lower) <= 0.10  # at most a tenth of the fakes told "Real"
    assert np.mean(fakes < np.nextafter(lower, 1) + 0.01) > 0.10  # and no lower than needed
    assert choose_real_below(probs, labels, 0.10, upper=0.1) == 0.1  # never above the upper threshold
    assert choose_real_below(np.full(10, 0.9), np.ones(10), 0.5, upper=0.95) == 0.5  # nor where p >= 0.5
    sources = np.array(["camera"] * 100 + ["swap"] * 120 + ["gan"] * 80)
    sources[:10] = "swap"  # a source with both classes (as DFDC: real frames and the swaps made from them)
    rates = rates_by_source(probs, labels, sources, Thresholds(0.9, lower, 0.9))
    assert rates["camera"]["reals"] == 90 and set(rates["camera"]) == {"reals", "called_deepfake"}
    assert rates["swap"]["reals"] == 10 and rates["swap"]["fakes"] == 120
    assert rates["swap"]["called_deepfake"] == np.mean(probs[:10] >= 0.9)
    assert rates["swap"]["called_real"] == np.mean(probs[100:220] < lower)
    assert rates["gan"]["called_real"] == np.mean(probs[220:] < lower)


def test_intervals_give_the_counts_behind_each_rate_and_how_far_it_could_be_off():
    import numpy as np

    from detector.ml.measurement.evaluation import intervals

    labels = np.array([0] * 17 + [1] * 40)
    verdicts = np.array(["Deepfake"] * 2 + ["Real"] * 15 + ["Deepfake"] * 30 + ["Uncertain"] * 10, object)
    probs = np.r_[np.linspace(0.0, 0.7, 17), np.linspace(0.3, 1.0, 40)]
    out = intervals(labels, probs, verdicts)
    accused = out["false_accusation_rate"]
    assert (accused["k"], accused["n"]) == (2, 17)
    assert accused["low"] == pytest.approx(0.0329, abs=1e-4) and accused["high"] == pytest.approx(0.3434, abs=1e-4)
    assert out["detection_rate"]["k"] == 30 and out["detection_rate"]["low"] < 0.75 < out["detection_rate"]["high"]
    from sklearn.metrics import roc_auc_score

    auc = out["auc"]
    assert auc["low"] < roc_auc_score(labels, probs) < auc["high"] and auc["resamples"] == 1000
    assert intervals(labels, probs, verdicts)["auc"] == auc  # seeded: the same report twice
    assert intervals(labels[:17], probs[:17], verdicts[:17])["auc"] is None  # one class only


def test_calibration_measures_the_gap_between_probability_and_share_of_fakes():
    from detector.ml.measurement.evaluation import calibration

    good = calibration([0, 0, 1, 1], [0.05, 0.15, 0.85, 1.0])
    assert good["brier"] == pytest.approx((0.05**2 + 0.15**2 + 0.15**2 + 0) / 4)
    assert good["ece"] == pytest.approx((0.05 + 0.15 + 0.15 + 0.0) / 4)
    assert [b["n"] for b in good["bins"]] == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]  # p = 1 falls in the last bin
    assert good["bins"][2] == {"from": 0.2, "to": 0.3, "n": 0, "mean_probability": None, "fake_share": None}
    # saying 90 % for every image when half are fake is 40 points off, whatever the ranking
    overconfident = calibration([0, 1, 0, 1], [0.9, 0.9, 0.9, 0.9])
    assert overconfident["ece"] == pytest.approx(0.4) and overconfident["fake_share"] == 0.5
    assert overconfident["bins"][9]["fake_share"] == 0.5
    assert calibration([], []) is None


def test_train_detector_refuses_a_training_run_without_a_version(tmp_path):
    with pytest.raises(CommandError, match="--model-version is required"):
        call_command("train_detector", "--out", str(tmp_path / "b"), "--dataset", str(tmp_path))


def test_train_detector_calibrate_only_refits_on_every_datasets_val(tiny_bundle, tmp_path):
    import shutil

    from detector.ml.inference.bundle import read_metadata

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    roots = []
    for name, offset in (("one", 0), ("two", 100)):
        roots += ["--dataset", str(write_val_set(tmp_path / name, 6, source=name, first_group=offset))]
    out = io.StringIO()
    call_command("train_detector", "--out", str(bundle), *roots, "--calibrate-only", stdout=out)
    assert json.loads(out.getvalue())["bundle"] == str(bundle)
    assert read_metadata(bundle).training["calibration"]["images"] == 24  # both datasets' val


def test_evaluate_detector_measures_a_named_bundle_whatever_serves(tiny_detector, tmp_path, capsys):
    from tests.conftest import build_tiny_bundle

    blue = build_tiny_bundle(tmp_path / "sees-blue", version="b-1", kernel=(-0.05, 0.0, 0.05))
    for i in range(2):
        write_image(tmp_path / "data" / "set_a" / "fake" / f"f{i}.png", (250, 10 * i, 0))
        write_image(tmp_path / "data" / "set_a" / "real" / f"r{i}.png", (0, 10 * i, 250))
    call_command("evaluate_detector", str(tmp_path / "data"), "--by-folder", "--json", "--bundle", str(blue))
    assert json.loads(capsys.readouterr().out)["model"] == "b-1"
    with pytest.raises(CommandError, match="not found"):
        call_command("evaluate_detector", str(tmp_path / "data"), "--bundle", str(tmp_path / "none"))
