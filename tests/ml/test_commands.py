"""The detect and evaluate_detector commands, on the tiny real bundle."""
import json

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from tests.conftest import image_bytes


def write_image(path, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), color).save(path)
    return path


def test_detect_prints_one_json_line_per_file(tiny_detector, tmp_path, capsys):
    red = write_image(tmp_path / "red.png", (250, 0, 0))
    blue = write_image(tmp_path / "blue.png", (0, 0, 250))
    call_command("detect", str(red), str(blue), "--json")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["Deepfake", "Real"]
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
    assert "good.png: Deepfake" in captured.out
    assert "notes.jpg: not analysed" in captured.err and "cut.jpg: not analysed" in captured.err


def test_evaluate_detector_on_a_generated_folder(tiny_detector, tmp_path, capsys):
    for i in range(3):
        write_image(tmp_path / "set_a" / "fake" / f"f{i}.png", (250, 10 * i, 0))
        write_image(tmp_path / "set_a" / "real" / f"r{i}.png", (0, 10 * i, 250))
        write_image(tmp_path / "set_b" / "real" / f"r{i}.jpg", (10 * i, 0, 240))
    roc = tmp_path / "roc.png"
    call_command("evaluate_detector", str(tmp_path), "--by-folder", "--json", "--roc", str(roc))
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "tiny-1"
    overall = report["overall"]
    assert overall["n"] == 9 and overall["auc"] == 1.0
    assert overall["detection_rate"] == 1.0 and overall["false_accusation_rate"] == 0.0
    assert report["by_source"]["set_b"]["auc"] is None  # one class only
    assert report["by_source"]["set_b"]["detection_rate"] is None
    assert report["by_source"]["set_a"]["tpr_at_fpr_1"] == 1.0
    assert roc.stat().st_size > 1000


def test_evaluate_detector_table_and_empty_folder(tiny_detector, tmp_path, capsys):
    write_image(tmp_path / "real" / "a.png", (0, 0, 250))
    write_image(tmp_path / "fake" / "b.png", (250, 0, 0))
    call_command("evaluate_detector", str(tmp_path))
    out = capsys.readouterr().out
    assert "overall" in out and "false-acc." in out
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no images"):
        call_command("evaluate_detector", str(tmp_path / "empty"))
