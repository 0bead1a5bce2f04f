"""Export a bundle's Keras model to LiteRT (a TFLite flatbuffer) and prove it answers the same.

``python -m detector.ml.training.export ml_models/<name>`` (or ``manage.py export_detector``)
writes ``model.tflite`` beside ``model.keras`` (``--float16``: its weights stored as float16, half
the file, for a bundle that would not fit ``ml_models/`` otherwise; it still computes in float32),
runs both on the validation split's images (200, spread over every source) through the serving path
(or, without a dataset, on generated images), and records the file, its sha256 and the largest difference
of the calibrated fake probability in the bundle's metadata.  An export that
differs by more than the tolerance is refused and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..inference.bundle import METADATA_FILE, BundleError, load_keras_model, read_metadata, sha256_file
from ..inference.engines import LITERT, KerasEngine, LiteRTEngine
from ..measurement.dataset import read_manifest

EXPORT_FILE = "model.tflite"
TOLERANCE = 0.01  # largest allowed difference of the calibrated fake probability
CHECK_IMAGES = 200


def generated_crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Face-sized test inputs without a dataset: smooth colour fields with noise and a bright oval."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    crops = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        base = rng.uniform(0, 255, 3) * (1 - yy[..., None]) + rng.uniform(0, 255, 3) * yy[..., None]
        oval = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.4) ** 2 < 1
        base[oval] = base[oval] * 0.4 + rng.uniform(120, 230, 3) * 0.6
        crops[i] = np.clip(base + rng.normal(0, rng.uniform(2, 25), base.shape), 0, 255)
    return crops


def validation_crops(dataset: Path, n: int, size: int, margin: float, scale: str = "resized") -> np.ndarray:
    """Face crops of ``n`` validation images spread evenly over the manifest (so every source is in)."""
    from ..inference.preprocessing import FaceFinder, decode_image, prepare

    samples = read_manifest(dataset, "val")
    finder = FaceFinder()
    crops = [
        prepare(decode_image(str(s.path)), finder, size, margin, scale=scale).batch()
        for s in samples[:: max(1, len(samples) // n)][:n]
    ]
    return np.concatenate(crops)


def compare(reference, candidate, crops: np.ndarray, calibration, batch: int = 8) -> dict:
    """Largest and mean differences between two engines' logits and calibrated probabilities."""
    ref = np.concatenate([reference.logits(crops[i : i + batch]) for i in range(0, len(crops), batch)])
    got = np.concatenate([candidate.logits(crops[i : i + batch]) for i in range(0, len(crops), batch)])
    p_ref = np.array([calibration.probability(float(z)) for z in ref])
    p_got = np.array([calibration.probability(float(z)) for z in got])
    return {
        "faces": len(crops),
        "max_logit_difference": float(np.abs(ref - got).max()),
        "max_probability_difference": float(np.abs(p_ref - p_got).max()),
        "mean_probability_difference": float(np.abs(p_ref - p_got).mean()),
    }


def heatmap_difference(model, candidate, crops: np.ndarray, batch: int = 8) -> float:
    """Largest difference between Grad-CAM on the Keras model and the export's activation maps (both in [0, 1])."""
    from ..inference.explain import GradCam, upsample

    gradcam = GradCam(model)
    worst = 0.0
    for i in range(0, len(crops), batch):
        x = crops[i : i + batch]
        expected = gradcam.heatmaps(x)
        worst = max(worst, float(np.abs(upsample(candidate.activation_maps(x), x.shape[1:3]) - expected).max()))
    return worst


def convert(model, input_size: int, target: Path, float16: bool = False) -> None:
    """Write the model, with its class activation map as a second output, as a LiteRT flatbuffer.

    ``float16`` stores the weights as float16 (the interpreter widens them once, when it loads the file).
    """
    import keras
    import tensorflow as tf

    from ..inference.explain import class_activation_map

    model = keras.Model(model.inputs, [model.output, class_activation_map(model)])
    options = (
        {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
        if float16
        else {}
    )
    model.export(
        str(target),
        format="litert",
        input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.float32)],
        verbose=False,
        **options,
    )


def export_bundle(path: Path, dataset: Path | None = None, images: int = CHECK_IMAGES, float16: bool = False) -> dict:
    """Export, check against the Keras model, and record the engine in the metadata; returns the record."""
    import keras
    import tensorflow as tf

    path = Path(path)
    meta = read_metadata(path)
    model = load_keras_model(path, meta)
    with tempfile.TemporaryDirectory(dir=path) as tmp:
        candidate_file = Path(tmp) / EXPORT_FILE
        convert(model, meta.input_size, candidate_file, float16)
        if dataset is not None:
            crops = validation_crops(dataset, images, meta.input_size, meta.face_margin, meta.crop_scale)
            source = f"faces of {images} val images of {Path(dataset).name}, spread over the manifest"
        else:
            crops = generated_crops(images, meta.input_size)
            source = f"{images} generated images"
        check = compare(KerasEngine(model, meta.input_size), LiteRTEngine(candidate_file), crops, meta.calibration)
        check["max_heatmap_difference"] = heatmap_difference(model, LiteRTEngine(candidate_file), crops)
        check["inputs"] = source
        check["tolerance"] = TOLERANCE
        if not check["max_probability_difference"] <= TOLERANCE:
            raise BundleError(
                f"the exported model differs from the Keras model by {check['max_probability_difference']:.4f} "
                f"in fake probability (tolerance {TOLERANCE}); nothing was written"
            )
        candidate_file.replace(path / EXPORT_FILE)
    record = {
        "file": EXPORT_FILE,
        "sha256": sha256_file(path / EXPORT_FILE),
        "format": "LiteRT (TFLite flatbuffer), "
        + ("float16 weights, float32 arithmetic" if float16 else "float32")
        + ", batch dimension free",
        "outputs": ["fake logit (n, 1)", "class activation map (n, h, w), for the heatmaps"],
        "exported_with": f"keras {keras.__version__}, tensorflow {tf.__version__}",
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}",
        "check": check,
    }
    meta.engines[LITERT] = record
    (path / METADATA_FILE).write_text(meta.to_json())
    return record


def build_parser(parser: argparse.ArgumentParser | None = None, default_bundle: Path | None = None):
    p = parser or argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "bundle",
        type=Path,
        nargs="?" if default_bundle else None,
        default=default_bundle,
        help="bundle folder with metadata.json and model.keras"
        + (f" (default: {default_bundle})" if default_bundle else ""),
    )
    p.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="dataset root with manifest.csv: check on its val images (default: generated images)",
    )
    p.add_argument("--images", type=int, default=CHECK_IMAGES, help="how many images to check on")
    p.add_argument(
        "--float16",
        action="store_true",
        help="store the weights as float16: half the file, checked against the Keras model like any export",
    )
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        record = export_bundle(args.bundle, args.dataset, args.images, args.float16)
    except BundleError as exc:
        raise SystemExit(f"export failed: {exc}") from exc
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()


def trained_summary(path: Path, dataset: Path, meta) -> dict:
    """After a training stage: export the new bundle's fast serving form (checked against its new weights on
    ``dataset``'s val images) and say what the stage did, for the command to print."""
    engine = export_bundle(path, dataset)
    return {
        "bundle": str(path),
        "val_auc": meta.training["val_auc"],
        "thresholds": vars(meta.thresholds),
        "minutes": meta.training["minutes"],
        "litert_max_probability_difference": engine["check"]["max_probability_difference"],
    }
