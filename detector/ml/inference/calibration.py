"""From a face's logit to a calibrated probability and a verdict: what a bundle applies.

:class:`Calibration` maps the network's logit to the probability that the face
is fake; :class:`Thresholds` turns that probability into Real, Uncertain or
Deepfake. Both are stored in a bundle's metadata (:mod:`.bundle`); they are
fitted on the validation split by :mod:`detector.ml.training.calibration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..labels import LABEL_FAKE, LABEL_REAL, LABEL_UNCERTAIN


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@dataclass
class Calibration:
    """Maps a face's raw logit z to the calibrated probability that it is fake; fitted on the validation split.

    Platt scaling where ``upper_slope`` is None: p = sigmoid(slope · z + intercept).
    Beta calibration (Kull, Silva Filho and Flach, AISTATS 2017) where it is set: with
    s = sigmoid(z), p = sigmoid(slope · ln s − upper_slope · ln(1 − s) + intercept), a
    separate slope for the low and the high end of the scores. With upper_slope equal
    to slope it is Platt scaling again, since ln s − ln(1 − s) = z.
    """

    slope: float = 1.0
    intercept: float = 0.0
    upper_slope: float | None = None

    @property
    def method(self) -> str:
        return "Platt scaling" if self.upper_slope is None else "beta calibration"

    def probability(self, logit: float) -> float:
        if self.upper_slope is None:
            z = self.slope * logit + self.intercept
        else:  # ln s = -softplus(-z), -ln(1 - s) = softplus(z)
            z = -self.slope * _softplus(-logit) + self.upper_slope * _softplus(logit) + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass
class Thresholds:
    """On the calibrated fake probability: Deepfake from ``deepfake_from``, Real below ``real_below``.

    Both are chosen on the validation split (:func:`calibrate_bundle`): ``decision``
    bounds the false accusations (the share of reals called Deepfake), and Deepfake
    starts there; ``real_below`` bounds the false reassurance (the share of fakes
    called Real). The scores between are Uncertain, so that nobody is told "Real"
    about an image the model finds suspicious. (Bundles before 2.2.0 set
    ``real_below`` a fixed distance below ``decision``, at most 0.5: :meth:`below`.)
    """

    decision: float = 0.5
    real_below: float = 0.5
    deepfake_from: float = 0.5

    def label(self, p: float) -> str:
        if p >= self.deepfake_from:
            return LABEL_FAKE
        if p < self.real_below:
            return LABEL_REAL
        return LABEL_UNCERTAIN

    @classmethod
    def below(cls, decision: float, band_logit: float) -> Thresholds:
        """Deepfake from ``decision``; Uncertain for ``band_logit`` below it, and wherever p >= 0.5."""
        real_below = min(0.5, 1.0 / (1.0 + math.exp(-(_logit(decision) - band_logit))))
        return cls(decision, real_below, decision)


def share_below(quantiles: list[float], p: float) -> float:
    """The share of a reference class scoring below ``p``, read off its quantiles (0 where it has none)."""
    if not quantiles:
        return 0.0
    q = np.asarray(quantiles, float)
    grid = np.linspace(0.0, 1.0, len(q))
    if p <= q[0]:
        return 0.0
    if p > q[-1]:
        return 1.0
    # the highest grid point whose quantile is below p, interpolated where the quantiles rise
    return float(np.interp(p, q, grid, left=0.0, right=1.0)) if np.all(np.diff(q) > 0) else float(grid[q < p].max())
