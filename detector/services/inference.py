"""The one detector per process, loaded once and shared by every thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from ..ml.bundle import BundleError, read_metadata
from ..ml.sources import training_summary

log = logging.getLogger(__name__)


class DetectorUnavailable(Exception):
    """The model could not be loaded; the reason is in the message."""


_lock = threading.Lock()
_detector = None
_error: str | None = None


def load_service(warm_up: bool = True):
    """Load (once) and warm up the detector named by ``DETECTOR_MODEL``; returns it or None."""
    global _detector, _error
    with _lock:
        if _detector is not None:
            return _detector
        from ..ml.predictor import Detector

        started = time.perf_counter()
        try:
            detector = Detector(
                settings.DETECTOR_MODEL, num_threads=settings.DETECTOR_THREADS, engine=settings.DETECTOR_ENGINE
            )
            if warm_up:
                detector.warm_up()
        except BundleError as exc:
            _error = str(exc)
            log.error("detector not loaded: %s", exc)
            return None
        _detector, _error = detector, None
        log.info("detector %s loaded in %.1f s", detector.version, time.perf_counter() - started)
        return _detector


def get_detector():
    """The loaded detector, loading it now if this process has not; raises DetectorUnavailable."""
    detector = _detector or load_service()
    if detector is None:
        raise DetectorUnavailable(_error or "the detector could not be loaded")
    return detector


def set_detector(detector) -> None:
    """Replace the process's detector (tests, or a reload after a new bundle)."""
    global _detector, _error
    with _lock:
        _detector, _error = detector, None


def is_loaded() -> bool:
    return _detector is not None


METRICS_FILE = "metrics-test.json"


def bundle_facts() -> dict | None:
    """The configured bundle's metadata and its measured test metrics, for pages that explain the model.

    ``recompressed`` holds the overall metrics of the test split re-encoded (``evaluate_detector --recompress``);
    ``trained`` what it learnt from (:func:`..ml.sources.training_summary`), members and all for an ensemble.
    """
    return _bundle_facts(str(settings.DETECTOR_MODEL))


@lru_cache(maxsize=4)
def _bundle_facts(path: str) -> dict | None:
    try:
        meta = read_metadata(Path(path))
    except BundleError:
        return None
    metrics_path = Path(path) / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    reruns = (json.loads(p.read_text()) for p in sorted(Path(path).glob("metrics-test-*.json")))
    recompressed = [{"conditions": r["recompressed"], "overall": r["overall"]} for r in reruns if r.get("recompressed")]
    try:
        trained = training_summary(meta, Path(path))
    except BundleError:
        return None
    return {"meta": meta, "metrics": metrics, "recompressed": recompressed, "trained": trained}
