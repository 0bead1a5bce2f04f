"""Real and swapped versions of one video frame, and where the swap changed the face.

Each DFDC face swap in the dataset shares a group with the real video it was made
from. Where the group also holds that video's real crop, the two images are often
crops of the same frame, pixel for pixel. Their difference shows which pixels the
swap replaced. Training uses it as the target of the mask head: the network
learns *where* a face was changed, not only *that* it was (supervision of the
manipulated region, as in Face X-ray and in multi-task detectors of
manipulated faces).

Pairs whose frames differ (the crops disagree at their edges, away from the face)
are left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from multiprocessing import Pool

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from ..inference.preprocessing import crop_face, decode_image, prepare
from ..measurement.dataset import Sample
from .crops import init_worker, worker_finder

# Median difference (0-255) along the crop's edges above which the two crops are not the same frame.
ALIGNED_EDGE_DIFFERENCE = 10.0
# A pixel counts as changed where the smoothed difference exceeds this (or twice the edges' noise).
CHANGED_DIFFERENCE = 16.0


@dataclass
class FramePair:
    fake: int  # index of the swapped image in the samples
    changed: np.ndarray  # (size, size) float32 in {0, 1}: where the swap changed the face


def matching_reals(samples: list[Sample]) -> list[tuple[int, int]]:
    """(fake index, real index) for every swap whose group holds exactly one real image of the same source."""
    groups = defaultdict(list)
    for i, s in enumerate(samples):
        if s.group:
            groups[(s.source, s.group)].append(i)
    pairs = []
    for members in groups.values():
        reals = [i for i in members if samples[i].label == 0]
        if len(reals) == 1:
            pairs += [(i, reals[0]) for i in members if samples[i].label == 1 and samples[i].kind == "faceswap"]
    return pairs


def changed_region(fake: np.ndarray, real: np.ndarray) -> np.ndarray | None:
    """Where two crops of one frame differ: a (size, size) float32 mask in {0, 1}; None if not one frame.

    The difference is the largest over the colour channels, smoothed; the
    threshold sits above the re-encoding noise measured along the crop's edges,
    which the swap leaves alone. Small gaps are closed and the region grown a
    little, to cover the swap rather than only its strongest changes.
    """
    size = fake.shape[0]
    diff = np.abs(fake.astype(np.int16) - real.astype(np.int16)).max(-1).astype(np.uint8)
    edge = max(2, size // 11)
    rim = np.concatenate([diff[:edge].ravel(), diff[-edge:].ravel(), diff[:, :edge].ravel(), diff[:, -edge:].ravel()])
    noise = float(np.median(rim))
    if noise > ALIGNED_EDGE_DIFFERENCE:
        return None
    scale = size / 224
    smooth = np.asarray(Image.fromarray(diff).filter(ImageFilter.GaussianBlur(3 * scale)), np.float32)
    mask = Image.fromarray(((smooth > max(CHANGED_DIFFERENCE, 2.0 * noise)) * 255).astype(np.uint8))
    odd = lambda k: max(3, int(round(k * scale)) | 1)  # noqa: E731
    mask = mask.filter(ImageFilter.MaxFilter(odd(9))).filter(ImageFilter.MinFilter(odd(5)))
    return (np.asarray(mask) > 127).astype(np.float32)


def _pair_one(job):
    fake_index, fake_path, real_path, size, margin = job
    fake_image, real_image = decode_image(str(fake_path)), decode_image(str(real_path))
    if fake_image.size != real_image.size:
        return None
    crop = prepare(fake_image, worker_finder(), size, margin, max_faces=1).crops[0]
    real_pixels = crop_face(real_image, crop.box, size, margin)
    changed = changed_region(crop.pixels, real_pixels)
    return None if changed is None else FramePair(fake_index, changed)


def frame_pairs(samples: list[Sample], size: int, margin: float, workers: int) -> dict[int, FramePair]:
    """The swaps of ``samples`` that have their real frame, by the swap's index."""
    jobs = [(f, samples[f].path, samples[r].path, size, margin) for f, r in matching_reals(samples)]
    if not jobs:
        return {}
    with Pool(workers, initializer=init_worker) as pool:
        results = list(tqdm(pool.imap(_pair_one, jobs, chunksize=16), total=len(jobs), desc="frame pairs", unit="pair"))
    return {p.fake: p for p in results if p is not None}
