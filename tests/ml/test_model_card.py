"""The model card's tables, from measurement files made up for the test."""

from detector.ml.measurement.model_card import interval_lines, recompression_lines


def run(auc, detected, accused, recompressed=None):
    fake = {"auc": None, "detection_rate": detected, "false_accusation_rate": None}
    real = {"auc": None, "detection_rate": None, "false_accusation_rate": accused}
    rep = {"overall": {"auc": auc, "detection_rate": detected, "false_accusation_rate": accused}}
    rep["by_source"] = {"gan": fake, "photos": real}
    return rep | ({"recompressed": recompressed} if recompressed else {})


def test_recompressed_runs_sit_beside_the_test_split_per_source():
    lines = recompression_lines(
        run(0.95, 0.9, 0.01),
        [
            run(0.94, 0.8, 0.02, {"jpeg_quality": 75, "scale": 1.0}),
            run(0.9, 0.7, 0.03, {"jpeg_quality": 75, "scale": 0.9}),
        ],
    )
    text = "\n".join(lines)
    assert "**JPEG 75**: every image re-encoded as JPEG at quality 75" in text
    assert "**90% + JPEG 75**: every image scaled to 90% (Lanczos), then re-encoded" in text
    header = next(line for line in lines if line.startswith("| source"))
    assert header.count("|") - 1 == 1 + 3 * 3  # source, then AUC, detected and false acc. for each of 3 runs
    assert "| **overall** | 0.950 | 0.940 | 0.900 | 0.900 | 0.800 | 0.700 | 0.010 | 0.020 | 0.030 |" in lines
    assert "| gan | — | — | — | 0.900 | 0.800 | 0.700 | — | — | — |" in lines


def test_intervals_show_the_count_behind_each_rate():
    test = run(0.95, 0.5, 2 / 17)
    fake = {"k": 5, "n": 10, "low": 0.237, "high": 0.763}
    accused = {"k": 2, "n": 17, "low": 0.0329, "high": 0.3434}
    test["intervals"] = {
        "overall": {
            "auc": {"low": 0.9, "high": 0.97, "resamples": 1000},
            "detection_rate": fake,
            "false_accusation_rate": accused,
        },
        "by_source": {
            "gan": {"auc": None, "detection_rate": fake, "false_accusation_rate": None},
            "photos": {"auc": None, "detection_rate": None, "false_accusation_rate": accused},
        },
    }
    lines = interval_lines(test)
    assert "| **overall** | 0.950 (0.900–0.970) | 5 of 10: 50.0% (23.7%–76.3%) | 2 of 17: 11.8% (3.3%–34.3%) |" in lines
    assert "| photos | — | — | 2 of 17: 11.8% (3.3%–34.3%) |" in lines
    assert any("1000 resamples" in line for line in lines)
