"""The model versions: every bundle in ``DETECTOR_MODEL_DIRS``, which one serves, and how reviewers found them.

A version is a bundle folder (a single model or an ensemble of bundles beside it) with its
metadata, model card and test metrics. The newest :class:`~detector.models.ModelActivation`
says which one serves (none: ``DETECTOR_MODEL``); activating writes a row, so rolling back
is activating an earlier version again. A bundle that fails its checks (missing files,
a checksum that does not match, a member of another version, a network that does not
load or answer) cannot be activated. Web processes and workers read the active version
at each analysis (:func:`.inference.get_detector`), so a change needs no restart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Q

from ..ml.inference.bundle import METADATA_FILE, BundleError, read_metadata
from ..ml.labels import LABEL_FAKE, LABEL_REAL
from ..models import Analysis, Detection, ModelActivation, ReviewVerdict, Status

log = logging.getLogger(__name__)

METRICS_FILE = "metrics-test.json"
CARD_FILE = "MODEL_CARD.md"


@dataclass
class ModelVersion:
    """One bundle folder as a version: what it is, whether it can serve, and its measured test metrics."""

    path: Path
    name: str
    version: str = ""
    title: str = ""
    members: list[str] = field(default_factory=list)  # an ensemble's member bundles
    error: str = ""  # why it cannot serve; empty where its checks pass
    metrics: dict | None = None  # the overall test metrics (evaluate_detector), where measured
    has_card: bool = False

    @property
    def usable(self) -> bool:
        return not self.error

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)


def model_dirs() -> list[Path]:
    return [Path(d) for d in settings.DETECTOR_MODEL_DIRS]


def describe(path: Path) -> ModelVersion:
    """A bundle folder as a version, its checks run (no TensorFlow: the checksums and the metadata)."""
    path = Path(path)
    found = ModelVersion(path=path, name=path.name, has_card=(path / CARD_FILE).is_file())
    try:
        meta = read_metadata(path)
    except BundleError as exc:
        found.error = str(exc)
        return found
    found.version = meta.version
    found.title = meta.training.get("title", "")
    found.members = [m["bundle"] for m in meta.members]
    metrics = path / METRICS_FILE
    if metrics.is_file():
        try:
            found.metrics = json.loads(metrics.read_text()).get("overall")
        except ValueError:
            log.warning("unreadable %s", metrics)
    return found


def versions() -> list[ModelVersion]:
    """Every bundle folder of every model folder, by name (each path once)."""
    seen, out = set(), []
    for folder in model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if (p / METADATA_FILE).is_file()):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                out.append(describe(path))
    return out


def find(wanted: str) -> ModelVersion:
    """A version by its version string, its bundle folder's name or its path; BundleError where none is."""
    for v in versions():
        if wanted in (v.version, v.name) or Path(wanted).resolve() == v.path.resolve():
            return v
    if (Path(wanted) / METADATA_FILE).is_file():
        return describe(Path(wanted))
    names = ", ".join(f"{v.name} ({v.version})" for v in versions() if v.usable)
    raise BundleError(f"no model version {wanted!r} in the model folders; there are: {names}")


def active_path() -> Path:
    """The bundle that should serve now: the newest activation's, else ``DETECTOR_MODEL``."""
    latest = ModelActivation.objects.values_list("bundle", flat=True).first()
    return Path(latest) if latest else Path(settings.DETECTOR_MODEL)


def active_path_or_none() -> Path | None:
    """:func:`active_path`, or None where the database cannot say (the caller keeps what it has)."""
    try:
        return active_path()
    except DatabaseError:
        log.warning("the database is unavailable: the active model version could not be read")
        return None


def check_serves(path: Path) -> None:
    """Load the bundle as serving would and judge one blank image; raises BundleError where it cannot."""
    from ..ml.inference.predictor import Detector

    try:
        Detector(path, num_threads=settings.DETECTOR_THREADS, engine=settings.DETECTOR_ENGINE).warm_up()
    except BundleError:
        raise
    except Exception as exc:  # a network that loads but does not answer is as unusable as a missing one
        raise BundleError(f"model bundle {path} does not answer: {exc}") from exc


def record_activation(path: Path, user=None) -> ModelActivation:
    """Record that the bundle at ``path`` serves from the next analysis on; BundleError if it cannot serve.

    Only folders in ``DETECTOR_MODEL_DIRS`` (or ``DETECTOR_MODEL`` itself) can be activated. What activation does
    to past uploads is :func:`.activation.activate`'s: it calls this.
    """
    path = Path(path)
    allowed = {v.path.resolve() for v in versions()} | {Path(settings.DETECTOR_MODEL).resolve()}
    if path.resolve() not in allowed:
        raise BundleError(f"{path} is not a bundle in the model folders ({', '.join(map(str, model_dirs()))})")
    found = describe(path)
    if found.error:
        raise BundleError(found.error)
    check_serves(path)
    return ModelActivation.objects.create(bundle=str(path), name=found.name, version=found.version, activated_by=user)


def active_version() -> str:
    """The version string of the bundle that should serve now."""
    latest = ModelActivation.objects.values_list("version", flat=True).first()
    return latest or read_metadata(Path(settings.DETECTOR_MODEL)).version


def review_agreement(detections=None) -> dict[str, dict]:
    """Per model version: how many of its analyses of reviewed uploads there are, and how many reviewers
    disagreed with (of ``detections``, a queryset; default every one). Every version that analysed a reviewed
    upload is counted, the one whose verdict is shown or not.

    A reviewer disagrees where they found real what the version called Deepfake, or fake what it called
    Real; an Uncertain verdict claimed neither, so it is counted apart.
    """
    detections = Detection.objects.all() if detections is None else detections
    reviewed = Q(detection__review_verdict=ReviewVerdict.REAL), Q(detection__review_verdict=ReviewVerdict.FAKE)
    rows = (
        Analysis.objects.filter(detection__in=detections.exclude(review_verdict=""), status=Status.DONE)
        .exclude(model_version="")
        .values("model_version")
        .annotate(
            reviewed=Count("pk"),
            agreed=Count("pk", filter=reviewed[0] & Q(label=LABEL_REAL) | reviewed[1] & Q(label=LABEL_FAKE)),
            disagreed=Count("pk", filter=reviewed[0] & Q(label=LABEL_FAKE) | reviewed[1] & Q(label=LABEL_REAL)),
        )
    )
    out = {}
    for r in rows:
        decided = r["agreed"] + r["disagreed"]
        out[r["model_version"]] = {
            "version": r["model_version"],
            **{k: r[k] for k in ("reviewed", "agreed", "disagreed")},
            "undecided": r["reviewed"] - decided,
            "disagreement_rate": r["disagreed"] / decided if decided else None,
        }
    return out
