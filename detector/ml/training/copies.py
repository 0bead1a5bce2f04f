"""The augmented training copies of the face crops, each with the mask of what was changed in it.

A copy is a job ``(kind, index, copy)``: ``plain`` is crop ``index`` itself,
``self_blend`` a pseudo-fake made from real crop ``index``. Every copy has its
own random stream, so a copy is the same whichever worker makes it and
whatever else is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .augment import mask_target, reframe, self_blend, training_view
from .pairs import FramePair

# Random streams of the two kinds of copies, kept apart so that adding one kind changes no other.
STREAMS = {"plain": 0, "self_blend": 7}
# Fakes made whole by a generator: every pixel of the crop is synthetic.
GENERATED_KINDS = ("gan", "diffusion")


def copy_jobs(labels: np.ndarray, augment_copies: int, self_blend_copies: int):
    """The training copies to make: every crop ``augment_copies`` times, then the self-blended fakes."""
    reals = np.flatnonzero(labels == 0)
    jobs = [("plain", i, c) for c in range(augment_copies) for i in range(len(labels))]
    jobs += [("self_blend", int(i), c) for c in range(self_blend_copies) for i in reals]
    return jobs


@dataclass
class CopyMaker:
    """Makes the augmented training copies of the crops, each with its mask target.

    The target says which share of each cell of the ``grid`` x ``grid`` output
    map was changed; its weight is 0 where that is unknown (a swap without its
    real frame). ``zoom`` reframes copies (:func:`.augment.reframe`) before the
    mirror and the damage.
    """

    crops: np.ndarray
    labels: np.ndarray
    kinds: np.ndarray
    pairs: dict[int, FramePair]
    seed: int
    margin: float
    strength: float
    grid: int
    zoom: float = 0.0
    landmarks: dict[int, np.ndarray] | None = None  # real crop index -> its face mesh, for the blend masks

    def plain_mask(self, i: int) -> tuple[np.ndarray, float]:
        size = self.crops.shape[1]
        if self.labels[i] == 0:
            return np.zeros((size, size), np.float32), 1.0
        if i in self.pairs:
            return self.pairs[i].changed, 1.0
        if self.kinds[i] in GENERATED_KINDS:
            return np.ones((size, size), np.float32), 1.0
        return np.zeros((size, size), np.float32), 0.0

    def points(self, i: int) -> np.ndarray | None:
        return None if self.landmarks is None else self.landmarks.get(i)

    def __call__(self, job: tuple[str, int, int]):
        kind, i, copy = job
        rng = np.random.default_rng([self.seed, STREAMS[kind], copy, i])
        if kind == "plain":
            pixels = self.crops[i]
            mask, weight = self.plain_mask(i)
        else:
            (pixels, mask), weight = self_blend(self.crops[i], rng, self.margin, self.points(i)), 1.0
        pixels, mask = reframe(pixels, mask, rng, self.zoom)
        pixels, mask = training_view(pixels, mask, rng, self.strength)
        return pixels, mask_target(mask, self.grid).astype(np.float16), np.float32(weight)


_maker: CopyMaker | None = None


def set_maker(maker: CopyMaker) -> None:
    """A worker process's copy maker (the crops travel to each worker once)."""
    global _maker
    _maker = maker


def make_copy(job):
    return _maker(job)
