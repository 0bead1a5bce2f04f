"""``make bench``: how fast the detector and the platform answer, beside the seed's way of serving.

Writes ``benchmarks/results/latest.json`` and ``latest.md``:

- the classifier per face at batch 1 and 8, for each engine (LiteRT with 1 and 2
  threads, the Keras model behind ``tf.function``, and Keras ``model.predict``);
- face detection on a 1024x768 photo;
- the whole analysis (decode, faces, classify) of a 1 MP photo with 0, 1 and 4 faces;
- HTTP end to end: N concurrent clients upload a ~1 MB JPEG to the app under
  gunicorn on 127.0.0.1 (workers = cores) until the verdict is stored, for
  N = 1, 4, 16; and the same for the seed's Flask app (``seed_app.py``);
- peak RSS per server worker, and the seconds from process start to the first verdict;
- the default's figures on fakes of kinds it never trained on (its ``metrics-unseen.json``, from the folds);
- a video's whole analysis: a 30-second 720p H.264 clip (and a 2-minute one, for memory), with 1.4.0's single
  model and with the shipped default (``video_cost.py``, a process per model).

Every figure is the median over several runs (``--runs``).  Loopback only; nothing is downloaded.

    make bench                      # or: .venv/bin/python benchmarks/bench.py [--runs 3] [--only micro|http]
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench_common import BUNDLE, CORES, RESULTS, cpu_model
from bench_http import http, upload_cpu
from bench_micro import micro
from bench_queue import queue
from bench_report import markdown
from bench_video import video_cost


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs per figure (the median is reported)")
    p.add_argument(
        "--only",
        choices=("micro", "upload", "http", "queue", "video"),
        help="one section only (the other sections of latest.json are kept)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and latest.md")
    args = p.parse_args()
    meta = json.loads((BUNDLE / "metadata.json").read_text())
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": cpu_model(),
        "cores": CORES,
        "python": f"Python {platform.python_version()}",
        "model": meta["version"],
        "runs": args.runs,
    }
    if (BUNDLE / "metrics-unseen.json").is_file():  # what the speed buys: the default on kinds it never saw
        result["unseen"] = json.loads((BUNDLE / "metrics-unseen.json").read_text())
    if args.only in (None, "micro"):
        result["micro"] = micro(args.runs)
    if args.only in (None, "upload"):
        result["upload"] = upload_cpu(args.runs)
    if args.only in (None, "http"):
        result["http"] = http(args.runs)
    if args.only in (None, "queue"):
        result["queue"] = queue(args.runs)
    if args.only in (None, "video"):
        result["video"] = video_cost(args.runs)
    if args.only and (args.out / "latest.json").is_file():  # one section measured again: keep the others
        kept = json.loads((args.out / "latest.json").read_text())
        result = {**kept, **{k: v for k, v in result.items() if k not in ("when", "runs")}}
        result.setdefault("sections_when", {})[args.only] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "latest.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
