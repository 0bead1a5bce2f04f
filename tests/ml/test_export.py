"""The exported LiteRT engine: written by a command, recorded with its checksum, as good as the Keras model."""

import json
import shutil

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from detector.ml.inference.bundle import BundleError, read_metadata, write_bundle
from detector.ml.inference.engines import HEATMAP_TOLERANCE, LiteRTEngine, export_draws_maps
from detector.ml.measurement.model_card import engine_lines
from detector.ml.training import export
from tests.conftest import SHARED_FACES, SHIPPED_EXPORTS, build_tiny_bundle, needs_shared


@pytest.fixture(scope="module")
def exported_bundle(tmp_path_factory):
    """A tiny real bundle with its LiteRT form exported by the code under test."""
    path = build_tiny_bundle(tmp_path_factory.mktemp("export") / "tiny", version="tiny-export")
    export.export_bundle(path, images=24)
    return path


def test_export_records_the_engine_file_checksum_and_check(exported_bundle):
    engine = read_metadata(exported_bundle).engines["litert"]
    assert (exported_bundle / engine["file"]).is_file()
    assert len(engine["sha256"]) == 64
    assert engine["check"]["faces"] == 24
    assert engine["check"]["max_probability_difference"] <= export.TOLERANCE


def test_the_detector_serves_with_the_exported_engine_when_there_is_one(exported_bundle, tiny_bundle):
    from detector.ml.inference.predictor import Detector

    assert Detector(exported_bundle).engine.name == "litert"
    assert Detector(tiny_bundle).engine.name == "keras"


def test_the_detector_does_not_load_keras_to_serve_or_explain_with_litert(exported_bundle):
    from detector.ml.inference.predictor import Detector

    detector = Detector(exported_bundle)
    detector.heatmaps(detector.prepare(Image.new("RGB", (64, 64), (200, 10, 10))))
    detector.judge(Image.new("RGB", (64, 64), (200, 10, 10)))
    assert detector._model is None


def test_the_exported_heatmaps_equal_grad_cam_on_the_keras_model(exported_bundle):
    from detector.ml.inference.predictor import Detector

    fast, reference = Detector(exported_bundle, engine="litert"), Detector(exported_bundle, engine="keras")
    image = Image.new("RGB", (64, 64), (40, 40, 40))
    image.paste((250, 20, 20), (10, 10, 30, 40))
    prepared = fast.prepare(image)
    maps = fast.heatmaps(prepared)
    assert maps.max() == pytest.approx(1.0)
    np.testing.assert_allclose(maps, reference.heatmaps(prepared), atol=2 / 255)


def test_both_engines_give_the_same_verdicts(exported_bundle):
    from detector.ml.inference.predictor import Detector

    fast, reference = Detector(exported_bundle, engine="litert"), Detector(exported_bundle, engine="keras")
    # Deepfake, Real and Uncertain (logit -0.2), each well away from a threshold: plain grey would give a
    # probability of exactly 0.5, on the threshold, where a rounding difference of 1e-8 flips the label.
    labels = set()
    for colour in [(250, 0, 0), (0, 0, 250), (118, 120, 122), (200, 90, 60)]:
        a = fast.judge(Image.new("RGB", (80, 60), colour))
        b = reference.judge(Image.new("RGB", (80, 60), colour))
        assert a.label == b.label == "No face"  # plain colours hold no face: the centre square is scored
        assert a.fake_probability == pytest.approx(b.fake_probability, abs=1e-4)
        label = fast.meta.thresholds.label(a.fake_probability)
        assert reference.meta.thresholds.label(b.fake_probability) == label
        labels.add(label)
    assert labels == {"Deepfake", "Real", "Uncertain"}


def test_asking_for_litert_without_an_export_is_a_clear_error(tiny_bundle):
    from detector.ml.inference.predictor import Detector

    with pytest.raises(BundleError, match="no exported litert engine"):
        Detector(tiny_bundle, engine="litert")


def test_an_unknown_engine_is_refused(tiny_bundle):
    from detector.ml.inference.predictor import Detector

    with pytest.raises(BundleError, match="unknown engine"):
        Detector(tiny_bundle, engine="onnx")


def test_a_damaged_export_is_refused_by_its_checksum(exported_bundle, tmp_path):
    damaged = shutil.copytree(exported_bundle, tmp_path / "damaged")
    with open(damaged / "model.tflite", "r+b") as f:
        f.seek(2000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="litert engine checksum mismatch"):
        read_metadata(damaged)


def test_a_missing_export_is_refused(exported_bundle, tmp_path):
    copy = shutil.copytree(exported_bundle, tmp_path / "missing")
    (copy / "model.tflite").unlink()
    with pytest.raises(BundleError, match="lacks its litert engine file"):
        read_metadata(copy)


def test_an_export_beyond_the_tolerance_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    path = build_tiny_bundle(tmp_path / "strict")
    monkeypatch.setattr(export, "TOLERANCE", -1.0)
    with pytest.raises(BundleError, match="differs from the Keras model"):
        export.export_bundle(path, images=4)
    assert not (path / "model.tflite").exists()
    assert read_metadata(path).engines == {}


def test_rewriting_the_weights_drops_the_stale_export(exported_bundle, tmp_path):
    import keras

    path = shutil.copytree(exported_bundle, tmp_path / "retrained")
    meta = read_metadata(path)
    write_bundle(path, keras.saving.load_model(path / "model.keras"), meta)
    assert not (path / "model.tflite").exists()
    assert read_metadata(path).engines == {}


def test_the_export_command_writes_into_the_named_bundle(tmp_path, capsys):
    path = build_tiny_bundle(tmp_path / "by-command")
    call_command("export_detector", str(path), "--images", "4")
    assert json.loads(capsys.readouterr().out)["file"] == "model.tflite"
    assert "litert" in read_metadata(path).engines


def test_a_float16_export_stores_its_weights_as_float16_checked_and_served_like_any_other(exported_bundle, tmp_path):
    from detector.ml.inference.predictor import Detector
    from detector.ml.inference.runtime import tflite_interpreter

    path = shutil.copytree(exported_bundle, tmp_path / "half")
    call_command("export_detector", str(path), "--images", "8", "--float16")
    engine = read_metadata(path).engines["litert"]
    assert "float16 weights" in engine["format"]
    assert engine["check"]["max_probability_difference"] <= export.TOLERANCE
    stored = {d["dtype"] for d in tflite_interpreter(str(path / "model.tflite")).get_tensor_details()}
    assert np.float16 in stored  # the tiny model's weights are too few to show in the file's size
    assert np.float16 not in {
        d["dtype"] for d in tflite_interpreter(str(exported_bundle / "model.tflite")).get_tensor_details()
    }
    image = Image.new("RGB", (80, 60), (200, 90, 60))
    half, reference = Detector(path), Detector(exported_bundle)
    assert half.engine.name == "litert"
    assert half.judge(image).fake_probability == pytest.approx(reference.judge(image).fake_probability, abs=1e-2)


def test_the_export_command_reports_a_broken_bundle(tmp_path):
    with pytest.raises(CommandError, match="not a folder"):
        call_command("export_detector", str(tmp_path / "nowhere"))


@pytest.fixture(scope="module", params=SHIPPED_EXPORTS, ids=lambda b: b.name)
def shipped_network(request):
    """Each shipped network that carries a LiteRT form, run by its Keras model (the reference)."""
    from detector.ml.inference.predictor import Detector

    return Detector(request.param, engine="keras")


@pytest.mark.parametrize("bundle", SHIPPED_EXPORTS, ids=lambda b: b.name)
def test_every_shipped_litert_engine_was_checked_against_its_keras_model(bundle):
    from detector.ml.inference.predictor import Detector

    engine = read_metadata(bundle).engines["litert"]
    assert engine["check"]["faces"] >= 200
    assert engine["check"]["max_probability_difference"] <= export.TOLERANCE
    assert engine["check"]["max_heatmap_difference"] >= 0
    # where the export's own maps serve, they were within the tolerance; elsewhere Grad-CAM draws them
    assert Detector(bundle).engine.has_maps == (engine["check"]["max_heatmap_difference"] < HEATMAP_TOLERANCE)


def test_each_shipped_litert_engine_matches_keras_on_generated_images(shipped_network):
    meta, path = shipped_network.meta, shipped_network.path
    crops = export.generated_crops(16, meta.input_size, seed=7)
    fast = LiteRTEngine(path / meta.engines["litert"]["file"])
    check = export.compare(shipped_network.engine, fast, crops, meta.calibration)
    assert check["max_probability_difference"] <= export.TOLERANCE
    if export_draws_maps(meta.engines["litert"]):
        assert export.heatmap_difference(shipped_network.model, fast, crops) < HEATMAP_TOLERANCE


@needs_shared
def test_each_shipped_litert_engine_matches_keras_on_validation_faces(shipped_network):
    meta, path = shipped_network.meta, shipped_network.path
    crops = export.validation_crops(SHARED_FACES, 40, meta.input_size, meta.face_margin, meta.crop_scale)
    fast = LiteRTEngine(path / meta.engines["litert"]["file"])
    check = export.compare(shipped_network.engine, fast, crops, meta.calibration)
    assert check["max_probability_difference"] <= export.TOLERANCE
    assert np.isfinite(check["max_logit_difference"])


def test_an_export_whose_maps_were_checked_off_grad_cam_leaves_the_heatmaps_to_the_keras_model(
    exported_bundle, tmp_path
):
    from detector.ml.inference.predictor import Detector

    path = shutil.copytree(exported_bundle, tmp_path / "faint-maps")
    meta = json.loads((path / "metadata.json").read_text())
    meta["engines"]["litert"]["check"]["max_heatmap_difference"] = 0.39  # as float16 weights gave Lite2's maps
    (path / "metadata.json").write_text(json.dumps(meta))
    image = Image.new("RGB", (64, 64), (40, 40, 40))
    image.paste((250, 20, 20), (10, 10, 30, 40))

    detector = Detector(path)
    assert detector.engine.name == "litert" and not detector.engine.has_maps
    prepared = detector.prepare(image)
    maps = detector.heatmaps(prepared)
    assert detector._model is not None  # Grad-CAM needed the Keras model
    reference = Detector(path, engine="keras")
    np.testing.assert_allclose(maps, reference.heatmaps(prepared), atol=1e-6)
    scored = detector.judge(image).fake_probability
    assert scored == pytest.approx(Detector(exported_bundle).judge(image).fake_probability)  # still the export
    assert "drawn by Grad-CAM on the Keras model" in "\n".join(engine_lines(meta["engines"]))


def test_with_the_mirror_view_both_engines_draw_the_same_heatmaps_in_place(exported_bundle, tmp_path):
    from detector.ml.inference.predictor import Detector

    bundle = tmp_path / "mirrored"
    shutil.copytree(exported_bundle, bundle)
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["test_time_flip"] = True
    (bundle / "metadata.json").write_text(json.dumps(meta))
    fast, reference = Detector(bundle, engine="litert"), Detector(bundle, engine="keras")
    image = Image.new("RGB", (64, 64), (40, 40, 40))
    image.paste((250, 20, 20), (10, 10, 30, 40))  # left of centre
    prepared = fast.prepare(image)
    maps = fast.heatmaps(prepared)
    np.testing.assert_allclose(maps, reference.heatmaps(prepared), atol=2 / 255)
    # The tiny model judges each pixel alone, so the mirror image's map, put back in place, is the crop's own.
    np.testing.assert_allclose(maps, Detector(exported_bundle).heatmaps(prepared), atol=2 / 255)
    assert not np.allclose(maps, maps[:, :, ::-1], atol=0.1)  # the hot patch stays on its side


@pytest.fixture(scope="module")
def portraits(tmp_path_factory):
    """Val faces: the fakes a portrait tinted red (the tiny model's 'fake'), the reals the portrait."""
    from tests.ml.test_clip import write_portraits

    return write_portraits(tmp_path_factory.mktemp("portraits"), per_split=(("val", 12),))


def int8_export(source, out, portraits, mode="full", **kwargs):
    return export.export_bundle(
        source,
        portraits,
        images=8,
        int8=mode,
        out=out,
        version=f"{source.name}-int8",
        auc_images=24,
        representative_images=8,
        **kwargs,
    )


@pytest.mark.parametrize("mode", export.INT8_MODES)
def test_an_integer_export_is_a_new_version_checked_on_val_auc_and_served_without_tensorflow(tmp_path, portraits, mode):
    from detector.ml.inference.predictor import Detector
    from tests.ml.test_clip import portrait

    source = build_tiny_bundle(tmp_path / "tiny", kernel=(0.004, 0.0, -0.004))  # logits within about 1
    record = int8_export(source, tmp_path / "tiny-q", portraits, mode)
    check = record["check"]
    assert "int8 weights" in record["format"] and check["auc_faces"] == 24 and check["auc_fakes"] == 12
    assert abs(check["auc_difference"]) <= export.INT8_AUC_TOLERANCE  # its own tolerance: the ranking kept
    assert check["max_probability_difference"] <= export.TOLERANCE
    assert check["representative_faces"] == (8 if mode == "full" else 0)
    meta = read_metadata(tmp_path / "tiny-q")
    assert (meta.name, meta.version) == ("tiny-q", "tiny-int8")
    assert meta.training["derived_from"] == {"bundle": "tiny", "version": "tiny-1", "by": f"integer export ({mode})"}
    assert read_metadata(source).engines == {}  # the float bundle is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny", "tiny-q"]  # no working folder left behind
    detector = Detector(tmp_path / "tiny-q")
    assert detector.engine.name == "litert" and detector._model is None
    verdict = detector.judge(portrait())
    assert verdict.model_version == "tiny-int8" and verdict.face_found


def test_an_integer_export_that_moves_the_val_auc_is_refused_and_writes_nothing(tmp_path, portraits, monkeypatch):
    source = build_tiny_bundle(tmp_path / "tiny", kernel=(0.004, 0.0, -0.004))
    monkeypatch.setattr(export, "INT8_AUC_TOLERANCE", -1.0)
    with pytest.raises(export.ExportRefused, match="changes the val AUC by") as refused:
        int8_export(source, tmp_path / "tiny-q", portraits)
    assert {"val_auc_float", "val_auc_export", "max_probability_difference"} <= set(refused.value.check)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_an_integer_export_needs_val_faces_a_new_folder_and_a_new_version(tmp_path, portraits):
    source = build_tiny_bundle(tmp_path / "tiny")
    with pytest.raises(BundleError, match="needs --dataset"):
        export.export_bundle(source, None, int8="full", out=tmp_path / "q", version="q-1")
    with pytest.raises(BundleError, match="new folder .* and a new version"):
        export.export_bundle(source, portraits, int8="full", out=source, version="q-1")
    with pytest.raises(BundleError, match="new folder .* and a new version"):
        export.export_bundle(source, portraits, int8="full", out=tmp_path / "q", version="tiny-1")
    with pytest.raises(CommandError, match="new folder"):
        call_command("export_detector", str(source), "--dataset", str(portraits), "--int8", "dynamic")


def test_where_the_integer_maps_miss_the_tolerance_a_float_twin_draws_the_heatmaps(tmp_path, portraits, monkeypatch):
    from detector.ml.inference import engines
    from detector.ml.inference.predictor import Detector
    from tests.ml.test_clip import portrait

    strict = 0.01  # the float32 maps of this model are within 1/255 of Grad-CAM, its integer ones 10 times further
    monkeypatch.setattr(export, "HEATMAP_TOLERANCE", strict)
    monkeypatch.setattr(engines, "HEATMAP_TOLERANCE", strict)
    source = build_tiny_bundle(tmp_path / "tiny", kernel=(0.004, 0.0, -0.004))
    record = int8_export(source, tmp_path / "tiny-q", portraits)
    assert record["check"]["max_heatmap_difference"] >= strict
    assert record["maps"]["file"] == export.MAPS_FILE and record["maps"]["max_heatmap_difference"] < strict
    detector = Detector(tmp_path / "tiny-q")
    assert not detector.engine.has_maps  # its own maps are not shown
    prepared = detector.prepare(portrait())
    expected = Detector(source).heatmaps(prepared)  # Grad-CAM on the Keras model
    np.testing.assert_allclose(detector.heatmaps(prepared), expected, atol=strict)
    assert detector._model is None  # drawn by the float twin, not by TensorFlow
    (tmp_path / "tiny-q" / export.MAPS_FILE).write_bytes(b"damaged")
    with pytest.raises(BundleError, match="heatmap engine"):
        read_metadata(tmp_path / "tiny-q")
