"""The wall time and peak memory of one video's analysis, in a process of its own; run by ``bench.py`` (``video``).

    .venv/bin/python benchmarks/video_cost.py BUNDLE CLIP [--runs 3] [--threads 2]

Prints one JSON line: the median seconds of the whole analysis (probe, frames sampled and decoded, faces found,
tracked and scored, the stills' heatmaps), its decode share, the frames, the tracks and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detector.ml.inference import video  # noqa: E402
from detector.ml.inference.predictor import Detector  # noqa: E402


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM, reset by exec). Not ``ru_maxrss``: Linux
    carries that over from the parent at fork, so under ``bench.py`` (gigabytes by then) every run read the same."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # where there is no /proc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("clip", type=Path)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--max-frames", type=int, default=120)
    args = p.parse_args()
    detector = Detector(args.bundle, num_threads=args.threads)
    detector.warm_up()
    rss_before = peak_rss_mb()
    seconds, results = [], []
    with args.clip.open("rb") as f:
        container = video.container_of(f.read(64))
    for _ in range(args.runs):
        started = time.perf_counter()
        info = video.probe(str(args.clip), 3600, 40_000_000, container)
        results.append(video.analyse(detector, str(args.clip), info, args.fps, args.max_frames))
        seconds.append(time.perf_counter() - started)
    last = results[-1]
    print(
        json.dumps(
            {
                "model": detector.version,
                "seconds": round(statistics.median(seconds), 2),
                "decode_seconds": round(statistics.median(r.decode_ms for r in results) / 1000, 2),
                "frames_sampled": last.frames_sampled,
                "tracks": len(last.tracks),
                "label": last.label,
                "rss_after_warm_up_mb": round(rss_before, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
