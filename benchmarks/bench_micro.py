"""``make bench``, micro: the classifier per face for each engine, face detection, the whole analysis of a photo,
evaluation speed."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from bench_common import BUNDLE, SHARED_FACES, jpeg, scene, timed


def micro(runs: int) -> dict:
    """Classifier, face detection and whole analysis, in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from detector.ml.inference.bundle import member_path, read_metadata
    from detector.ml.inference.engines import KerasEngine, LiteRTEngine
    from detector.ml.inference.predictor import Detector
    from detector.ml.inference.preprocessing import SERVING_DECODE_SIDE, FaceFinder, decode

    rng = np.random.default_rng(0)
    out: dict = {"classifier": {}, "face_detection": {}, "analysis": {}}

    # every network of the default: the bundle itself, or each member of an ensemble
    default = read_metadata(BUNDLE)
    for network in [member_path(BUNDLE, m) for m in default.members] or [BUNDLE]:
        detector = Detector(network, engine="keras")
        size = detector.meta.input_size
        crops = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
        tflite = network / detector.meta.engines["litert"]["file"]
        engines = {
            "LiteRT, 2 threads": LiteRTEngine(tflite, 2),
            "LiteRT, 1 thread": LiteRTEngine(tflite, 1),
            "Keras tf.function": KerasEngine(detector.model, size),
            "Keras model.predict": None,
        }
        for name, engine in engines.items():
            row = {}
            for batch in (1, 8):
                x = crops[:batch]
                if engine is None:
                    call = lambda x=x, d=detector: d.model.predict(x.astype(np.float32), verbose=0)  # noqa: E731
                else:
                    call = lambda x=x, e=engine: e.logits(x)  # noqa: E731
                row[f"batch_{batch}"] = timed(call, runs, calls=10 if batch == 8 else 20, per=batch)
            key = name if network == BUNDLE else f"{network.name} ({size} px), {name}"
            out["classifier"][key] = row
            print(f"classifier {key}: {row}", flush=True)

    photo = scene(1, (1024, 768))
    for threads in (1, 2):
        finder = FaceFinder(num_threads=threads)
        found = len(finder(photo))
        out["face_detection"][f"{threads} thread{'s' if threads > 1 else ''}"] = {
            **timed(lambda f=finder: f(photo), runs),
            "faces_found": found,
        }
    print(f"face detection (1024x768): {out['face_detection']}", flush=True)

    for threads in (1, 2):
        served = Detector(BUNDLE, num_threads=threads)
        row = {}
        for faces in (0, 1, 4):
            data = jpeg(scene(faces, (1280, 800)))
            verdict = served.judge(decode(data, min_side=SERVING_DECODE_SIDE))
            found = len(verdict.faces) if verdict.face_found else 0
            run = lambda d=data, s=served: s.judge(decode(d, min_side=SERVING_DECODE_SIDE))  # noqa: E731
            row[f"{faces}_faces"] = {**timed(run, runs), "faces_found": found}
        engines = sorted({d.engine.name for d in served.members or [served]})
        out["analysis"][f"{threads} thread{'s' if threads > 1 else ''} ({', '.join(engines)})"] = row
        print(f"whole analysis, 1280x800 JPEG, {threads} threads: {row}", flush=True)
    out["evaluation"] = evaluation_speed(runs)
    return out


def evaluation_speed(runs: int, images: int = 800) -> dict | None:
    """Images per second of the evaluation path (decode, faces, batched classification) on val images."""
    from detector.ml.inference.predictor import Detector
    from detector.ml.measurement.dataset import read_manifest
    from detector.ml.measurement.evaluation import score_samples

    if not (SHARED_FACES / "manifest.csv").is_file():
        print(f"evaluation speed skipped: no dataset at {SHARED_FACES}", flush=True)
        return None
    samples = read_manifest(SHARED_FACES, "val")
    samples = samples[:: max(1, len(samples) // images)][:images]
    out = {"images": len(samples)}
    for threads in (1, 2):
        detector = Detector(BUNDLE, num_threads=threads)
        rates = []
        for _ in range(runs):
            started = time.perf_counter()
            score_samples(detector, samples, progress=False)
            rates.append(len(samples) / (time.perf_counter() - started))
        out[f"{threads} thread{'s' if threads > 1 else ''}"] = round(statistics.median(rates), 1)
    print(f"evaluation: {out}", flush=True)
    return out
