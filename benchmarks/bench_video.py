"""``make bench``, video: a 30-second 720p clip (and a 2-minute one) analysed by the shipped models."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import BUNDLE, CORES, _skimage
from loopback import ROOT
from PIL import Image, ImageFilter

V1_4 = ROOT / "ml_models" / "faces-effnetlite0-v1"


def video_clip(path: Path, seconds: int, fps: int = 30, size: tuple[int, int] = (1280, 720)) -> None:
    """An H.264 clip of a portrait (scikit-image's astronaut) drifting over a real background, with a cut
    half-way to a second shot of the face, larger; x264's defaults (a keyframe at most every 250 frames)."""
    import av

    background = _skimage("coffee").resize(size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    face = _skimage("astronaut").crop((60, 0, 400, 340))
    shots = [face.resize((300, 300), Image.BICUBIC), face.resize((420, 420), Image.BICUBIC)]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        frames = seconds * fps
        for k in range(frames):
            shot = shots[0] if k < frames // 2 else shots[1]
            frame = background.copy()
            x = 100 + int(600 * k / frames)
            frame.paste(shot, (x, 120 if shot is shots[0] else 60))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def video_cost(runs: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clips = {"30 s 720p": (tmp / "30s.mp4", 30), "2 min 720p": (tmp / "120s.mp4", 120)}
    out = {"clips": {}, "models": {}}
    for name, (path, seconds) in clips.items():
        started = time.perf_counter()
        video_clip(path, seconds)
        out["clips"][name] = {"bytes": path.stat().st_size, "made_in_s": round(time.perf_counter() - started, 1)}
    for bundle in (V1_4, BUNDLE):
        rows = {}
        for name, (path, _) in clips.items():
            done = subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "video_cost.py"), str(bundle), str(path)]
                + ["--runs", str(runs if name.startswith("30") else 1), "--threads", str(CORES)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        out["models"][bundle.name] = rows
    print(f"video: {out}", flush=True)
    return out
