"""Face-detector recall on ../shared faces and time per image, for the model card.

Every image of the dataset shows a face, so recall is the share of images in
which a detector finds at least one.  Compares the shipped finder (BlazeFace
short + full range) with OpenCV's Haar cascade and MTCNN where installed
(neither is a project dependency: `pip install "opencv-python-headless<5"`,
`pip install --no-deps mtcnn==1.0.0 lz4`).

    .venv/bin/python benchmarks/face_detectors.py --per-group 40
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detector.ml.inference.faces import BlazeFaceDetector  # noqa: E402
from detector.ml.inference.preprocessing import FaceFinder, decode_image  # noqa: E402
from detector.ml.measurement.dataset import read_manifest  # noqa: E402


def detectors():
    finder = FaceFinder(num_threads=1)
    yield "BlazeFace short+full (shipped)", lambda im: len(finder(im))
    short = BlazeFaceDetector("short", pad_fraction=0.25, num_threads=1)
    yield "BlazeFace short only", lambda im: len(short.detect(im))
    try:
        import cv2

        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        yield (
            "OpenCV Haar cascade",
            lambda im: len(
                cascade.detectMultiScale(
                    cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2GRAY), scaleFactor=1.1, minNeighbors=5
                )
            ),
        )
    except ImportError:
        pass
    try:
        from mtcnn import MTCNN

        mtcnn = MTCNN()
        yield "MTCNN 1.0.0", lambda im: len(mtcnn.detect_faces(np.asarray(im)))
    except ImportError:
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/faces")
    p.add_argument("--split", default="val")
    p.add_argument("--per-group", type=int, default=40, help="images per (source, label)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    groups = defaultdict(list)
    for s in read_manifest(args.dataset, args.split):
        groups[(s.source, s.label)].append(s)
    rng = random.Random(0)
    sample = [s for g in sorted(groups) for s in rng.sample(groups[g], min(args.per_group, len(groups[g])))]
    images = [(s, decode_image(str(s.path))) for s in sample]
    results = {}
    for name, detect in detectors():
        detect(images[0][1])  # warm-up
        found, times = defaultdict(list), []
        for s, im in images:
            t = time.perf_counter()
            n = detect(im)
            times.append(time.perf_counter() - t)
            found[f"{s.source}/{'fake' if s.label else 'real'}"].append(n > 0)
        results[name] = {
            "recall": float(np.mean([x for v in found.values() for x in v])),
            "ms_median": 1000 * float(np.median(times)),
            "by_group": {k: float(np.mean(v)) for k, v in sorted(found.items())},
        }
        print(f"{name:32s} recall {results[name]['recall']:.3f}  {results[name]['ms_median']:6.1f} ms/img")
    print(f"{len(images)} {args.split} images, 1 thread")
    if args.json:
        args.json.write_text(json.dumps({"images": len(images), "split": args.split, "detectors": results}, indent=2))


if __name__ == "__main__":
    main()
