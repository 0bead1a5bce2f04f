"""The one detector per process, shared by every thread, and replaced when another model version is activated.

At each analysis :func:`get_detector` asks the registry which bundle should serve
(:func:`.registry.active_path`); where that is not the loaded one, the new bundle is loaded
and warmed up first and only then put in place, so no request is ever answered by a
half-loaded model, and a bundle that fails to load leaves the one serving in place.
:func:`set_detector` pins a detector (tests, or a caller that wants exactly one).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from ..ml.inference.bundle import BundleError, member_path, read_metadata
from ..ml.measurement.sources import training_summary

log = logging.getLogger(__name__)


class DetectorUnavailable(Exception):
    """The model could not be loaded; the reason is in the message."""


_lock = threading.Lock()  # guards the swap
_loading = threading.Lock()  # one load at a time; meanwhile the other threads keep the detector in place
_detector = None
_pinned = False  # set_detector's: the registry is not asked
_error: str | None = None
_failed: dict[str, float] = {}  # bundle path -> when it failed to load (tried again after RETRY_SECONDS)
RETRY_SECONDS = 60


def _serves(path: Path) -> bool:
    return _detector is not None and (_pinned or Path(_detector.path).resolve() == path)


def load_service(warm_up: bool = True, path: Path | None = None):
    """Load and warm up the detector of ``path`` (default ``DETECTOR_MODEL``) unless it is the one loaded,
    then put it in place; returns the process's detector (the one before where the new one fails), or None."""
    global _detector, _error
    path = Path(path or settings.DETECTOR_MODEL).resolve()
    if _serves(path):
        return _detector
    if time.monotonic() - _failed.get(str(path), -RETRY_SECONDS) < RETRY_SECONDS:
        return _detector
    # Where a detector serves already, a thread that finds another loading goes on with the one in place.
    if not _loading.acquire(blocking=_detector is None):
        return _detector
    try:
        if _serves(path):
            return _detector
        from ..ml.inference.predictor import Detector

        started = time.perf_counter()
        try:
            detector = Detector(path, num_threads=settings.DETECTOR_THREADS, engine=settings.DETECTOR_ENGINE)
            if warm_up:
                detector.warm_up()
        except BundleError as exc:
            _failed[str(path)] = time.monotonic()
            _error = str(exc)
            log.error("detector %s not loaded: %s", path, exc)
            return _detector
        with _lock:
            previous, _detector, _error = _detector, detector, None
        _failed.pop(str(path), None)
        log.info(
            "detector %s loaded in %.1f s%s",
            detector.version,
            time.perf_counter() - started,
            f" in place of {previous.version}" if previous is not None else "",
        )
        return _detector
    finally:
        _loading.release()


def get_detector():
    """The detector of the active model version, loading it now where this process has another (or none);
    raises DetectorUnavailable."""
    if _pinned and _detector is not None:
        return _detector
    from .registry import active_path_or_none

    detector = load_service(path=active_path_or_none() or (_detector.path if _detector else None))
    if detector is None:
        raise DetectorUnavailable(_error or "the detector could not be loaded")
    return detector


_others: dict[str, object] = {}  # bundle path -> a detector of a version that does not serve (re-analyses)
_others_lock = threading.Lock()
MAX_OTHERS = 2


def detector_for(path: Path | str | None):
    """The detector of the bundle at ``path`` (None: the active version's), for re-analysing past uploads with a
    version that may not be the one serving; loaded once and kept (the last ``MAX_OTHERS`` of them).
    Raises DetectorUnavailable where it does not load."""
    active = get_detector()
    if path is None or _serves(Path(path).resolve()):
        return active
    key = str(Path(path).resolve())
    with _others_lock:
        if key not in _others:
            from ..ml.inference.predictor import Detector

            try:
                detector = Detector(key, num_threads=settings.DETECTOR_THREADS, engine=settings.DETECTOR_ENGINE)
                detector.warm_up()
            except BundleError as exc:
                raise DetectorUnavailable(str(exc)) from exc
            while len(_others) >= MAX_OTHERS:
                _others.pop(next(iter(_others)))
            _others[key] = detector
        return _others[key]


def set_detector(detector) -> None:
    """Pin the process's detector (tests, or a caller that wants exactly one); None unpins it, and the next
    analysis loads the active version."""
    global _detector, _error, _pinned
    with _lock:
        _detector, _error, _pinned = detector, None, detector is not None
        _failed.clear()
        _others.clear()


def is_loaded() -> bool:
    return _detector is not None


METRICS_FILE = "metrics-test.json"
# evaluate_detector's FaceForensics++ test metrics: of the bundle, and of its recipe trained without one method
FFPP_METRICS_FILE = "metrics-ffpp-test.json"
UNSEEN_PREFIX = "metrics-ffpp-test-without-"


def bundle_facts() -> dict | None:
    """The active version's bundle's metadata and its measured test metrics, for pages that explain the model.

    ``recompressed`` holds the overall metrics of the test split re-encoded (``evaluate_detector --recompress``);
    ``trained`` what it learnt from (:func:`..ml.measurement.sources.training_summary`), members and all for an
    ensemble;
    ``unseen`` each left-out method's AUC against the FaceForensics++ reals, by the bundle's recipe trained
    without it (``metrics-ffpp-test-without-<source>.json``) and by the bundle itself, which saw it.
    """
    from .registry import active_path_or_none

    return _bundle_facts(str(active_path_or_none() or settings.DETECTOR_MODEL))


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
    return {
        "meta": meta,
        "metrics": metrics,
        "recompressed": recompressed,
        "trained": trained,
        "unseen": _unseen_methods(Path(path)),
        "unseen_kinds": _unseen_kinds(Path(path)),
        "draws_heatmaps": _draws_heatmaps(Path(path), meta),
    }


UNSEEN_KINDS_FILE = "metrics-unseen.json"


def _unseen_kinds(path: Path) -> dict | None:
    """How the version did on fakes of kinds it never trained on (its out-of-domain folds, ``ml.training.folds``):
    ``{"kinds": [{"name", "title", "fakes", "called_real", "caught", "auc", "interval"}], "called_real", "caught"}``;
    None where the bundle was not measured so."""
    file = path / UNSEEN_KINDS_FILE
    return json.loads(file.read_text()) if file.is_file() else None


def _draws_heatmaps(path: Path, meta) -> bool:
    """Whether the bundle has maps to show: a network does, a head on CLIP features not; an ensemble where one of
    its members does (read from the metadata, without loading anything)."""
    if meta.members:
        return any("clip" not in read_metadata(member_path(path, m)).engines for m in meta.members)
    return "clip" not in meta.engines


def _unseen_methods(path: Path) -> list[dict]:
    """[{"source", "unseen_version", "unseen_auc", "seen_auc"}] from the leave-one-method-out metrics files."""
    seen_path = path / FFPP_METRICS_FILE
    seen = json.loads(seen_path.read_text())["against_reals"] if seen_path.is_file() else {}
    rows = []
    for p in sorted(path.glob(f"{UNSEEN_PREFIX}*.json")):
        source = p.stem.removeprefix(UNSEEN_PREFIX)
        run = json.loads(p.read_text())
        if source in run.get("against_reals", {}):
            rows.append(
                {
                    "source": source,
                    "unseen_version": run.get("model"),
                    "unseen_auc": run["against_reals"][source]["auc"],
                    "seen_auc": seen.get(source, {}).get("auc"),
                }
            )
    return rows
