"""How much each training copy counts: both classes alike, small sources not drowned by large ones."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..measurement.dataset import Sample


def balanced_weights(samples: list[Sample]) -> np.ndarray:
    """Both classes weigh the same; within a class, sources count by sqrt(size) so small ones matter.

    With several datasets, the classes also weigh the same within each dataset, so
    that no dataset's look (its cameras, compression, framing) comes to mean a class.
    """
    groups = Counter((s.label, s.source) for s in samples)
    w = np.array([1.0 / math.sqrt(groups[(s.label, s.source)]) for s in samples])
    labels = np.array([s.label for s in samples])
    datasets = np.array([s.dataset for s in samples])
    if len(set(datasets.tolist())) > 1:
        for d in set(datasets.tolist()):
            mine = datasets == d
            half = w[mine].sum() / 2
            for c in (0, 1):
                if (mine & (labels == c)).any():
                    w[mine & (labels == c)] *= half / w[mine & (labels == c)].sum()
    for c in (0, 1):
        if (labels == c).any():
            w[labels == c] *= (len(samples) / 2) / w[labels == c].sum()
    return w.astype(np.float32)


def add_pseudo_fakes(y: np.ndarray, w: np.ndarray, count: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Append ``count`` pseudo-fake rows that carry ``share`` of the fake class's weight.

    The fake class keeps its total weight (so both classes still weigh the
    same); the real fakes give up ``share`` of it, each source in proportion.
    """
    if not 0 < share < 1:
        raise ValueError("the pseudo-fakes' share of the fake class must be between 0 and 1")
    fake_total = float(w[y == 1].sum())
    w = w.copy()
    w[y == 1] *= 1 - share
    added = np.full(count, share * fake_total / count, np.float32)
    return np.concatenate([y, np.ones(count, np.float32)]), np.concatenate([w, added]).astype(np.float32)


def copy_labels_and_weights(samples, jobs, self_blend_share: float):
    """Labels and sample weights of the copies, in :func:`.copies.copy_jobs`' order.

    Plain copies weigh as :func:`balanced_weights` says; the self-blended fakes
    carry ``self_blend_share`` of the fake class's weight. Where there are no plain
    fakes (a model that learns from self-blended fakes alone), the self-blended fakes
    are the fake class: each weighs what the real it was made from weighs, so that
    both classes, and every source within them, weigh the same.
    """
    kinds = [kind for kind, _, _ in jobs]
    plain = kinds.count("plain")
    if kinds != ["plain"] * plain + ["self_blend"] * (len(kinds) - plain):
        raise ValueError("copies must come plain first, then self-blended")
    y = np.array([samples[i].label for _, i, _ in jobs[:plain]], np.float32)
    w = balanced_weights(samples)[[i for _, i, _ in jobs[:plain]]]
    if len(kinds) > plain and not y.any():
        blended = balanced_weights(samples)[[i for _, i, _ in jobs[plain:]]]
        blended *= w.sum() / blended.sum()
        y = np.concatenate([y, np.ones(len(blended), np.float32)])
        return y, np.concatenate([w, blended]).astype(np.float32)
    if len(kinds) > plain:
        y, w = add_pseudo_fakes(y, w, len(kinds) - plain, self_blend_share)
    return y, w
