"""What each model costs: the whole analysis of a 1 MP photo with one face, per shipped bundle.

Decode (as uploads are decoded), find the face, crop, classify (every member, for an
ensemble, each on the crop and its mirror image), calibrate: ``Detector.judge`` on a
1152 x 864 JPEG of a portrait on a real background, 2 threads, the median of ``--runs``
rounds of 20 calls after 3 warm-up calls. Bundles that are ensembles are timed whole.

    .venv/bin/python benchmarks/model_cost.py [--runs 5] [BUNDLE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, jpeg, scene, timed  # noqa: E402

sys.path.insert(0, str(ROOT))


def main() -> None:
    from detector.ml.inference.bundle import BundleError, read_metadata
    from detector.ml.inference.predictor import Detector
    from detector.ml.inference.preprocessing import SERVING_DECODE_SIDE, decode

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="*", type=Path, help="bundles to time (default: every bundle in ml_models/)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    bundles = args.bundles or sorted(d for d in (ROOT / "ml_models").iterdir() if (d / "metadata.json").is_file())
    data = jpeg(scene(1, (1152, 864)))
    rows = {}
    for bundle in bundles:
        try:
            meta = read_metadata(bundle)
        except BundleError as exc:
            print(f"{bundle.name}: skipped ({exc})", file=sys.stderr)
            continue
        detector = Detector(bundle, num_threads=args.threads)
        faces = len(detector.judge(decode(data, min_side=SERVING_DECODE_SIDE)).faces)
        cost = timed(lambda d=detector: d.judge(decode(data, min_side=SERVING_DECODE_SIDE)), args.runs)
        networks = len(meta.members) or 1
        rows[bundle.name] = {"version": meta.version, "networks": networks, "faces": faces, **cost}
        print(f"{bundle.name} {meta.version}: {cost['median_ms']} ms median, {cost['p95_ms']} ms p95", flush=True)
    print(json.dumps({"image": "1152x864 JPEG, one face", "threads": args.threads, "bundles": rows}, indent=2))


if __name__ == "__main__":
    main()
