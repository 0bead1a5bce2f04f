"""What each backbone costs to serve: the classifier on one face (its crop and its mirror image, one batch).

The classifier as training builds it (``model.build_classifier``: ImageNet weights, a one-logit head) for
EfficientNet-Lite0 at 224 px, Lite1 at 240 px and Lite2 at 260 px, exported to LiteRT as a bundle is (with the
activation map as its second output) and run by the LiteRT interpreter with 2 threads: the median of ``--runs``
rounds of 20 calls after 3 warm-up calls. The weights do not change the cost, so no training is needed.

    .venv/bin/python benchmarks/backbone_cost.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, timed  # noqa: E402

sys.path.insert(0, str(ROOT))


def main() -> None:
    from detector.ml.inference.engines import LiteRTEngine
    from detector.ml.training.backbone import VARIANTS
    from detector.ml.training.export import convert
    from detector.ml.training.model import build_classifier

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    rows = {}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, variant in VARIANTS.items():
            size = variant.resolution
            model = build_classifier(size, backbone=name)
            target = Path(tmp) / f"{name}.tflite"
            convert(model, size, target)
            engine = LiteRTEngine(target, num_threads=args.threads)
            crops = rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32)  # a crop and its mirror image
            rows[name] = {
                "input_px": size,
                "parameters": model.count_params(),
                "litert_mb": round(target.stat().st_size / 2**20, 1),
                **timed(lambda engine=engine, crops=crops: engine.logits(crops), args.runs),
            }
            print(name, rows[name], flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
