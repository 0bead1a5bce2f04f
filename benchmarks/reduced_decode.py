"""Does the serving decode change verdicts? Each image judged from a full decode and as an upload is decoded.

Serving decodes a large JPEG reduced and finds faces on a box-reduced copy (``preprocessing.decode`` with
``SERVING_DECODE_SIDE``, ``DecodedImage.working``); training and evaluation decode in full. This judges every
image of a folder both ways with the shipped model and reports how far the fake probabilities and the verdicts
move, and the decode time saved.

    .venv/bin/python benchmarks/reduced_decode.py .cache/ood [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detector.ml.inference.predictor import Detector  # noqa: E402
from detector.ml.inference.preprocessing import SERVING_DECODE_SIDE, ImageDecodeError, decode  # noqa: E402

BUNDLE = Path(__file__).resolve().parent.parent / "ml_models" / "faces-effnetlite0-v2"
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def judged(detector: Detector, data: bytes, min_side: int | None):
    started = time.process_time()
    decoded = decode(data, min_side=min_side)
    verdict = detector.judge(decoded)
    return verdict, (time.process_time() - started) * 1000, decoded


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--json", type=Path, help="write the per-image rows here")
    args = p.parse_args()
    detector = Detector(BUNDLE)
    detector.warm_up()
    rows = []
    for path in sorted(f for f in args.folder.rglob("*") if f.suffix.lower() in SUFFIXES):
        data = path.read_bytes()
        try:
            full, full_ms, _ = judged(detector, data, None)
            served, served_ms, decoded = judged(detector, data, SERVING_DECODE_SIDE)
        except ImageDecodeError as exc:
            print(f"{path}: skipped ({exc})")
            continue
        rows.append(
            {
                "image": str(path.relative_to(args.folder)),
                "size": [decoded.width, decoded.height],
                "decoded_at": list(decoded.image.size),
                "faces_full": len(full.faces) if full.face_found else 0,
                "faces_served": len(served.faces) if served.face_found else 0,
                "p_full": round(full.fake_probability, 4),
                "p_served": round(served.fake_probability, 4),
                "label_full": full.label,
                "label_served": served.label,
                "ms_full": round(full_ms, 1),
                "ms_served": round(served_ms, 1),
            }
        )
    moved = [abs(r["p_full"] - r["p_served"]) for r in rows]
    large = [r for r in rows if max(r["size"]) >= SERVING_DECODE_SIDE]
    summary = {
        "images": len(rows),
        "images_with_a_long_side_of_1600_px_or_more": len(large),
        "largest_probability_change": max(moved, default=0),
        "verdicts_changed": [r["image"] for r in rows if r["label_full"] != r["label_served"]],
        "face_counts_changed": [r["image"] for r in rows if r["faces_full"] != r["faces_served"]],
        "ms_full_large": round(sum(r["ms_full"] for r in large), 1),
        "ms_served_large": round(sum(r["ms_served"] for r in large), 1),
    }
    for r in large:
        print(
            f"{r['image']}: {r['size'][0]}x{r['size'][1]} decoded at {r['decoded_at'][0]}x{r['decoded_at'][1]}, "
            f"p {r['p_full']} -> {r['p_served']}, {r['label_full']} -> {r['label_served']}, "
            f"{r['ms_full']} -> {r['ms_served']} ms"
        )
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
