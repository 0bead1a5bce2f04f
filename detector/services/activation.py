"""Activating a model version: it serves from the next analysis on, and the uploads it has analysed take its
verdict. The registry says which bundle serves (:mod:`.registry`); the verdicts are the analysis service's
(:func:`.analysis.adopt_version`); this service, called by the admin and ``manage.py model_versions``, does both."""

from __future__ import annotations

import logging
from pathlib import Path

from ..models import ModelActivation
from .analysis import adopt_version
from .registry import record_activation

log = logging.getLogger(__name__)


def activate(path: Path, user=None) -> ModelActivation:
    """Make the bundle at ``path`` the serving version; BundleError (nothing changed) where it cannot serve."""
    activation = record_activation(path, user)
    changed = adopt_version(activation.version)
    log.info(
        "model version %s %s activated by %s; %d earlier uploads it had analysed take its verdict",
        activation.name,
        activation.version,
        user or "an operator",
        changed,
    )
    return activation
