"""Export a bundle's Keras model to LiteRT (a TFLite flatbuffer) and prove it answers the same.

``python -m detector.ml.training.export ml_models/<name>`` (or ``manage.py export_detector``)
writes ``model.tflite`` beside ``model.keras`` (``--float16``: its weights stored as float16, half
the file, for a bundle that would not fit ``ml_models/`` otherwise; it still computes in float32),
runs both on the validation split's images (200, spread over every source) through the serving path
(or, without a dataset, on generated images), and records the file, its sha256 and the largest difference
of the calibrated fake probability in the bundle's metadata.  An export that
differs by more than the tolerance is refused and nothing is written.

``--int8 full`` quantises weights and activations to 8-bit integers (post-training, the activations' ranges
from a representative set of 300 val faces of every source; ``--int8 dynamic``: weights only, the fallback).
Its outputs change, so it is written as a new version (``--out`` a new folder, ``--model-version``), and it is
accepted only where, besides the probability tolerance, its val AUC (1,000 val images spread over every
source, face by face, each face labelled with its image's label) stays within ``INT8_AUC_TOLERANCE`` of the
Keras model's. Where its activation maps miss the heatmap tolerance, a float32 export is kept beside it for the
heatmaps alone (``model-maps.tflite``, loaded when a map is first asked for), so serving never needs TensorFlow.
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
from ..inference.engines import HEATMAP_TOLERANCE, LITERT, KerasEngine, LiteRTEngine
from ..measurement.dataset import read_manifest

EXPORT_FILE = "model.tflite"
MAPS_FILE = "model-maps.tflite"  # beside an integer export whose own maps miss the tolerance
TOLERANCE = 0.01  # largest allowed difference of the calibrated fake probability
CHECK_IMAGES = 200
INT8_MODES = ("full", "dynamic")
INT8_AUC_TOLERANCE = 0.003  # largest allowed change of the val AUC for an integer export
AUC_IMAGES = 1000
REPRESENTATIVE_IMAGES = 300


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


def validation_faces(
    dataset: Path, n: int, size: int, margin: float, scale: str = "resized", offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Face crops of ``n`` validation images spread evenly over the manifest (so every source is in), from the
    ``offset``-th on, with each face's image label (1 fake)."""
    from ..inference.preprocessing import FaceFinder, decode_image, prepare

    samples = read_manifest(dataset, "val")
    finder = FaceFinder()
    crops, labels = [], []
    for s in samples[offset :: max(1, len(samples) // n)][:n]:
        faces = prepare(decode_image(str(s.path)), finder, size, margin, scale=scale).batch()
        crops.append(faces)
        labels += [s.label] * len(faces)
    return np.concatenate(crops), np.array(labels, int)


def validation_crops(dataset: Path, n: int, size: int, margin: float, scale: str = "resized") -> np.ndarray:
    """Face crops of ``n`` validation images spread evenly over the manifest (so every source is in)."""
    return validation_faces(dataset, n, size, margin, scale)[0]


def auc_check(reference, candidate, crops: np.ndarray, labels: np.ndarray, batch: int = 8) -> dict:
    """Both engines' AUC on the same labelled faces, and how far the candidate's is from the reference's."""
    from sklearn.metrics import roc_auc_score

    ref = np.concatenate([reference.logits(crops[i : i + batch]) for i in range(0, len(crops), batch)])
    got = np.concatenate([candidate.logits(crops[i : i + batch]) for i in range(0, len(crops), batch)])
    float_auc, int_auc = float(roc_auc_score(labels, ref)), float(roc_auc_score(labels, got))
    return {
        "auc_faces": len(crops),
        "auc_fakes": int(labels.sum()),
        "val_auc_float": float_auc,
        "val_auc_export": int_auc,
        "auc_difference": int_auc - float_auc,
        "auc_tolerance": INT8_AUC_TOLERANCE,
    }


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


def convert(
    model,
    input_size: int,
    target: Path,
    float16: bool = False,
    int8: str | None = None,
    representative: np.ndarray | None = None,
) -> None:
    """Write the model, with its class activation map as a second output, as a LiteRT flatbuffer.

    ``float16`` stores the weights as float16 (the interpreter widens them once, when it loads the file).
    ``int8="full"``: weights and activations as 8-bit integers, the activations' ranges from ``representative``
    crops (inputs and outputs stay float32); ``int8="dynamic"``: integer weights, activations quantised per call.
    """
    import keras
    import tensorflow as tf

    from ..inference.explain import class_activation_map

    model = keras.Model(model.inputs, [model.output, class_activation_map(model)])
    if int8 == "full":
        if representative is None or not len(representative):
            raise BundleError("a full-integer export needs representative crops")

        def examples():
            for crop in representative:
                yield [crop[None].astype(np.float32)]

        options = {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": examples,
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
        }
    elif int8 == "dynamic":
        options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    elif int8 is not None:
        raise BundleError(f"unknown integer export {int8!r}; choose one of {', '.join(INT8_MODES)}")
    elif float16:
        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
    else:
        options = {}
    model.export(
        str(target),
        format="litert",
        input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.float32)],
        verbose=False,
        **options,
    )


def export_bundle(
    path: Path,
    dataset: Path | None = None,
    images: int = CHECK_IMAGES,
    float16: bool = False,
    int8: str | None = None,
    out: Path | None = None,
    version: str | None = None,
    auc_images: int = AUC_IMAGES,
    representative_images: int = REPRESENTATIVE_IMAGES,
) -> dict:
    """Export, check against the Keras model, and record the engine in the metadata; returns the record.

    ``int8`` (``full`` or ``dynamic``): an integer export, written as version ``version`` into the new bundle
    folder ``out`` (the weights copied, nothing else of the old one) and only where both checks hold.
    """
    import shutil

    import keras
    import tensorflow as tf

    path = Path(path)
    meta = read_metadata(path)
    if int8 is not None:
        if int8 not in INT8_MODES:
            raise BundleError(f"unknown integer export {int8!r}; choose one of {', '.join(INT8_MODES)}")
        if dataset is None:
            raise BundleError("an integer export needs --dataset: its ranges and its AUC check come from val faces")
        if out is None or version is None or Path(out).resolve() == path.resolve() or version == meta.version:
            raise BundleError(
                "an integer export changes the outputs: give a new folder (--out) and a new version (--model-version)"
            )
        if Path(out).exists():
            raise BundleError(f"{out} exists already; an integer export is written into a new bundle folder")
    model = load_keras_model(path, meta)
    target = Path(out) if int8 else path
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        candidate_file = work / EXPORT_FILE
        representative = None
        if int8 == "full":
            representative = validation_faces(
                dataset, representative_images, meta.input_size, meta.face_margin, meta.crop_scale, offset=1
            )[0]
        convert(model, meta.input_size, candidate_file, float16, int8, representative)
        if dataset is not None:
            crops = validation_crops(dataset, images, meta.input_size, meta.face_margin, meta.crop_scale)
            source = f"faces of {images} val images of {Path(dataset).name}, spread over the manifest"
        else:
            crops = generated_crops(images, meta.input_size)
            source = f"{images} generated images"
        reference = KerasEngine(model, meta.input_size)
        check = compare(reference, LiteRTEngine(candidate_file), crops, meta.calibration)
        check["max_heatmap_difference"] = heatmap_difference(model, LiteRTEngine(candidate_file), crops)
        check["inputs"] = source
        check["tolerance"] = TOLERANCE
        if int8:
            faces, labels = validation_faces(dataset, auc_images, meta.input_size, meta.face_margin, meta.crop_scale)
            check |= auc_check(reference, LiteRTEngine(candidate_file), faces, labels)
            check["representative_faces"] = 0 if representative is None else len(representative)
        refusals = []
        if not check["max_probability_difference"] <= TOLERANCE:
            refusals.append(
                f"differs from the Keras model by {check['max_probability_difference']:.4f} in fake probability "
                f"(tolerance {TOLERANCE})"
            )
        if int8 and not abs(check["auc_difference"]) <= INT8_AUC_TOLERANCE:
            refusals.append(
                f"changes the val AUC by {check['auc_difference']:+.4f} ({check['val_auc_float']:.4f} to "
                f"{check['val_auc_export']:.4f}; tolerance {INT8_AUC_TOLERANCE})"
            )
        if refusals:
            raise ExportRefused(f"the exported model {' and '.join(refusals)}; nothing was written", check)
        maps = None
        if int8 and check["max_heatmap_difference"] >= HEATMAP_TOLERANCE:
            convert(model, meta.input_size, work / MAPS_FILE)  # float32, for the heatmaps alone
            maps_difference = heatmap_difference(model, LiteRTEngine(work / MAPS_FILE), crops)
            if maps_difference < HEATMAP_TOLERANCE:
                maps = {
                    "file": MAPS_FILE,
                    "sha256": sha256_file(work / MAPS_FILE),
                    "format": "LiteRT (TFLite flatbuffer), float32, for the heatmaps alone, loaded when first asked",
                    "max_heatmap_difference": maps_difference,
                }
        if int8:
            shutil.copy2(path / meta.weights_file, work / meta.weights_file)
            meta.training = {
                **meta.training,
                "derived_from": {"bundle": path.name, "version": meta.version, "by": f"integer export ({int8})"},
            }
            meta.name, meta.version, meta.engines = Path(out).name, version, {}
        if int8 == "full":
            kind = "int8 weights and activations (full-integer), float32 inputs and outputs"
        elif int8 == "dynamic":
            kind = "int8 weights, activations quantised per call (dynamic range)"
        else:
            kind = "float16 weights, float32 arithmetic" if float16 else "float32"
        record = {
            "file": EXPORT_FILE,
            "sha256": sha256_file(work / EXPORT_FILE),
            "format": f"LiteRT (TFLite flatbuffer), {kind}, batch dimension free",
            "outputs": ["fake logit (n, 1)", "class activation map (n, h, w), for the heatmaps"],
            "exported_with": f"keras {keras.__version__}, tensorflow {tf.__version__}",
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}",
            "check": check,
            **({"maps": maps} if maps else {}),
        }
        meta.engines[LITERT] = record
        if int8:  # the new bundle, metadata and all, appears whole or not at all
            (work / METADATA_FILE).write_text(meta.to_json())
            work.rename(target)
        else:  # the float export replaces the bundle's own
            (work / EXPORT_FILE).replace(path / EXPORT_FILE)
            (path / METADATA_FILE).write_text(meta.to_json())
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    read_metadata(target)  # the files check out as recorded
    return record


class ExportRefused(BundleError):
    """An export that missed a check: nothing was written; ``check`` holds what was measured."""

    def __init__(self, message: str, check: dict):
        super().__init__(message)
        self.check = check


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
    p.add_argument(
        "--int8",
        choices=INT8_MODES,
        help="integer export (full: weights and activations, ranges from 300 val faces; dynamic: weights only), "
        "written as a new version (--out, --model-version), accepted only where its val AUC stays within "
        f"{INT8_AUC_TOLERANCE} of the Keras model's; needs --dataset",
    )
    p.add_argument("--out", type=Path, help="with --int8: the new bundle folder to write")
    p.add_argument("--model-version", help="with --int8: the new bundle's version")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        record = export_bundle(
            args.bundle, args.dataset, args.images, args.float16, args.int8, args.out, args.model_version
        )
    except ExportRefused as exc:
        print(json.dumps(exc.check, indent=2))
        raise SystemExit(f"export refused: {exc}") from exc
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
