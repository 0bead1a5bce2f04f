"""What every section of ``make bench`` shares: the constants, the test images and the timer."""

from __future__ import annotations

import io
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from loopback import ROOT
from PIL import Image, ImageFilter

sys.path.insert(0, str(ROOT))


RESULTS = ROOT / "benchmarks" / "results"


# The shipped default, or the version DETECTOR_MODEL names (the servers it starts inherit it too), so that one
# machine can time an earlier version beside it: DETECTOR_MODEL=ml_models/ensemble-v1 bench.py --out OTHER_FOLDER
BUNDLE = ROOT / os.environ.get("DETECTOR_MODEL", "ml_models/ensemble-v2")


SHARED_FACES = ROOT.parent / "shared" / "datasets" / "faces"


CORES = os.cpu_count() or 1


CLIENTS = (1, 4, 16)


def _skimage(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def scene(faces: int, size: tuple[int, int]) -> Image.Image:
    """A photo-like scene of ``size`` with 0, 1 or 4 portraits (scikit-image's astronaut) on a real background."""
    canvas = _skimage("coffee").resize(size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    w, h = size
    if faces == 1:
        side = h
        canvas.paste(_skimage("astronaut").resize((side, side), Image.BICUBIC), ((w - side) // 2, 0))
    elif faces == 4:
        side = h // 2
        head = _skimage("astronaut").crop((110, 0, 330, 220))  # the face fills a group-photo tile
        portrait = head.resize((side, side), Image.BICUBIC)
        for i, (x, y) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
            tile = portrait.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else portrait
            canvas.paste(tile, (w // 2 - side + x * side, y * side))
    return canvas


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def upload_jpeg(target: int = 1_000_000) -> bytes:
    """A one-face photo of about ``target`` bytes (the camera-like noise is what makes real photos large)."""
    rng = np.random.default_rng(0)
    image = np.asarray(scene(1, (1600, 1200)), dtype=np.float32)
    noisy = Image.fromarray(np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8))
    for quality in range(80, 100):
        data = jpeg(noisy, quality)
        if len(data) >= target * 0.9:
            return data
    return data


def phone_jpeg(target: int = 4_000_000) -> bytes:
    """A 12 MP (4000x3000) one-face photo of about ``target`` bytes, as a phone saves it."""
    rng = np.random.default_rng(1)
    image = np.asarray(scene(1, (4000, 3000)), dtype=np.float32)
    noisy = Image.fromarray(np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8))
    for quality in range(70, 100, 2):
        data = jpeg(noisy, quality)
        if len(data) >= target * 0.9:
            return data
    return data


def timed(fn, runs: int, calls: int = 20, per: int = 1) -> dict:
    """Median and p95 in ms (divided by ``per``): the median over ``runs`` rounds of ``calls`` calls each."""
    for _ in range(3):
        fn()
    medians, p95s = [], []
    for _ in range(runs):
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000 / per)
        times.sort()
        medians.append(statistics.median(times))
        p95s.append(times[min(len(times) - 1, int(0.95 * len(times)))])
    return {"median_ms": round(statistics.median(medians), 2), "p95_ms": round(statistics.median(p95s), 2)}


def cpu_model() -> str:
    """The processor's name as the kernel reports it, with the architecture."""
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or 'unknown CPU'} ({platform.machine()})"
