"""The one way a detection gets its verdict, in the request or on a worker: claim, judge, save.

Each analysis is recorded as the :class:`~detector.models.Analysis` of the model version that made
it (one per version and upload). The upload's verdict, the same fields on the
:class:`~detector.models.Detection`, is its analysis by the active version: a new upload's always;
a re-analysis (:mod:`.reanalysis`) by another version is kept beside it and shown side by side.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from .. import provenance
from ..ml.inference import video
from ..ml.inference.preprocessing import DecodedImage
from ..models import ANALYSIS_FIELDS, VERDICT_FIELDS, Analysis, Detection, Label, Status
from ..uploads import decode_stored
from . import webhooks
from .detections import claim, delete_files
from .explanations import face_file_names
from .inference import get_detector

log = logging.getLogger(__name__)

# What an analysis writes on its upload's row, by an UPDATE of these columns only: never an insert (a row deleted
# while it was analysed stays deleted) and never a column someone else writes meanwhile (a review, a share link).
RECORDED_FIELDS = (*VERDICT_FIELDS, "analysed_at", "duration_seconds")


class DetectionGone(Exception):
    """The upload was deleted while it was analysed: nothing of the analysis is kept, and nothing is left."""


def run(
    detection, decoded: DecodedImage | None = None, new_attempt: bool = True, data: bytes | None = None
) -> Detection | None:
    """Claim the detection (a row, or its id) and analyse it; None where there was nothing to do (gone,
    finished, given up).

    ``decoded`` and ``data``: the pixels the upload's checks decoded and the bytes they checked, where the
    analysis runs in the same request; otherwise the stored original is read (and decoded) once.
    """
    claimed = claim(detection, new_attempt)
    if claimed is None:
        return None
    try:
        return analyse(claimed, decoded, data)
    except DetectionGone:
        log.info("detection %s was deleted while it was analysed; nothing was kept", claimed.pk)
        return None


def _record_failure(detection: Detection, what: str, exc: Exception) -> None:
    """No verdict, and why: the reason goes to the owner and the reviewers."""
    detection.status = Status.FAILED
    detection.label = Label.NO_VERDICT
    detection.error_message = f"The {what} could not be analysed: {exc}"[:1000]


def identity(detector) -> dict:
    """The bundle that judged, by name and version (a detector pinned in tests may have no folder)."""
    return getattr(detector, "identity", None) or {"name": "", "version": detector.version, "title": ""}


def record(detection: Detection, detector, current: bool = True) -> Detection:
    """Save what ``detector`` found on ``detection`` (set on it by the caller) as that version's analysis, and,
    where ``current``, as the upload's verdict; otherwise the upload keeps the verdict it has. Both in one
    transaction, with the upload's row locked. A verdict replaced by another version's loses the face pictures
    made for the old one. Raises DetectionGone, writing nothing, where the row was deleted meanwhile."""
    detection.analysed_at = timezone.now()
    detection.model_version = detector.version  # also where it failed: the version that tried
    fields = {f: getattr(detection, f) for f in ANALYSIS_FIELDS if f != "model_version"}
    fields["model_name"] = identity(detector)["name"]
    with transaction.atomic():
        # The lock orders this against a deletion (``detections.delete_detection`` takes it too): whichever comes
        # second sees what the first committed.
        before = Detection.objects.select_for_update().filter(pk=detection.pk).values("model_version", "faces").first()
        if before is None:
            raise DetectionGone(detection.pk)
        if current:
            stale = _stale_pictures(detection, before["model_version"], before["faces"])
            Detection.objects.filter(pk=detection.pk).update(**{f: getattr(detection, f) for f in RECORDED_FIELDS})
            if stale:
                transaction.on_commit(lambda: delete_files(detection, stale))
        Analysis.objects.update_or_create(detection=detection, model_version=detector.version, defaults=fields)
        webhooks.enqueue(detection)  # the owner's callbacks, sent after the commit by the periodic sender
    return detection


def _stale_pictures(detection: Detection, version_before: str | None, faces_before: list | None) -> list[str]:
    """The face pictures made for the verdict the row held (by ``version_before``), where another version's
    verdict replaces it."""
    if not version_before or version_before == detection.model_version:
        return []
    return face_file_names(Detection(pk=detection.pk, faces=faces_before))


def adopt(analysis: Analysis) -> None:
    """Make a finished analysis its upload's verdict (its version now serves), in place of the one shown."""
    detection = analysis.detection
    if analysis.status != Status.DONE or detection.status in Status.unfinished():
        return
    version_before, faces_before = detection.model_version, detection.faces  # as loaded: no second read
    for f in ANALYSIS_FIELDS:
        setattr(detection, f, getattr(analysis, f))
    stale = _stale_pictures(detection, version_before, faces_before)
    with transaction.atomic():
        changed = Detection.objects.filter(pk=detection.pk).update(
            **{f: getattr(detection, f) for f in ANALYSIS_FIELDS}
        )
        if changed and stale:
            transaction.on_commit(lambda: delete_files(detection, stale))


def adopt_version(version: str) -> int:
    """Every upload this version has analysed takes that analysis as its verdict (the version was activated);
    the others keep theirs until they are re-analysed. Returns how many changed."""
    changed = 0
    finished = Analysis.objects.by_version(version).filter(status=Status.DONE)
    for a in finished.exclude(detection__model_version=version).select_related("detection").iterator(chunk_size=500):
        adopt(a)
        changed += 1
    return changed


def analyse(
    detection: Detection,
    decoded: DecodedImage | None = None,
    data: bytes | None = None,
    detector=None,
    current: bool = True,
) -> Detection:
    """Run the detector (default: the active version's) on a detection and record the verdict, or the failure
    and its reason (see :func:`record` for ``current``).

    A missing model (DetectorUnavailable) or unreadable storage (OSError) is
    raised, not recorded: for a worker they are transient, and the job is retried. An upload deleted meanwhile
    raises DetectionGone, with nothing written (:func:`run` answers None for it).
    """
    if detection.is_video:
        return analyse_video(detection, detector, current)
    detector = detector or get_detector()
    if data is None:
        try:
            with detection.image.open("rb") as f:
                data = f.read()
        except FileNotFoundError:
            if not Detection.objects.filter(pk=detection.pk).exists():
                raise DetectionGone(detection.pk) from None
            raise
    started = time.perf_counter()
    try:
        verdict = detector.judge(decoded or decode_stored(data))
    except Exception as exc:  # anything wrong with this image (or a time limit) is recorded, never a 500
        log.exception("analysis of %s failed", detection.id)
        _record_failure(detection, "image", exc)
    else:
        detection.status = Status.DONE
        detection.label = verdict.label
        # No face, no verdict: the centre square's score stays in ``faces`` for reviewers, never as the image's.
        detection.fake_probability = verdict.fake_probability if verdict.face_found else None
        detection.confidence = verdict.confidence
        detection.threshold = verdict.threshold
        detection.real_below = verdict.real_below
        detection.model_version = verdict.model_version
        detection.face_found = verdict.face_found
        detection.faces = [
            {
                "box": f.box,
                "fake_probability": f.fake_probability,
                "label": f.label,
                **({"models": f.models} if f.models else {}),
            }
            for f in verdict.faces
        ]
        detection.model_scores = verdict.models
        # What the file says of its origin, from the original bytes, weighed by the one rule.
        found = provenance.read(data, detection.content_type, settings.DETECTOR_C2PA_TRUST_ANCHORS)
        ruling = provenance.rule(verdict.label, found)
        detection.provenance = [f.as_dict() for f in found]
        detection.model_label = verdict.label if ruling.label != verdict.label else ""
        detection.label, detection.verdict_reason = ruling.label, ruling.reason
        if ruling.label != verdict.label:
            detection.confidence = None  # the calibrated confidence was the model's, in its own label
        detection.error_message = ""
    detection.processing_ms = round((time.perf_counter() - started) * 1000)
    record(detection, detector, current)
    log.info(
        "detection %s analysed by %s: %s in %d ms",
        detection.pk,
        detector.version,
        detection.label,
        detection.processing_ms,
    )
    return detection


def still_name(detection: Detection, track: int, number: int, kind: str) -> str:
    return f"stills/{detection.pk}-{track}-{number}-{kind}.{'jpg' if kind == 'image' else 'png'}"


def _report_progress(detection: Detection):
    def report(done: int, planned: int) -> None:
        now = timezone.now()
        Detection.objects.filter(pk=detection.pk).update(frames_sampled=done, frames_planned=planned, progress_at=now)
        detection.frames_sampled, detection.frames_planned, detection.progress_at = done, planned, now

    return report


def _open_video(detection: Detection):
    """The stored original for PyAV: its path on a local disk, else a seekable file from the storage."""
    try:
        return detection.image.path, None
    except NotImplementedError:  # a remote storage (S3): a file object that reads ranges as PyAV seeks
        f = detection.image.storage.open(detection.image.name, "rb")
        return f, f


def analyse_video(detection: Detection, detector=None, current: bool = True) -> Detection:
    """A video's verdict (``ml.inference.video``): frames sampled, faces tracked, each track scored; progress stored
    as it goes. Its stills and their heatmaps are written before the row that names them; a failure is recorded, except
    the storage's (OSError), which undoes the stills written and is raised for the caller to retry.
    Where ``current`` is false (a re-analysis by a version that does not serve) the upload's row is not touched."""
    detector = detector or get_detector()
    started = time.perf_counter()
    source, opened = _open_video(detection)
    written = []
    try:
        info = video.probe(source, float("inf"), settings.DETECTOR_MAX_PIXELS, detection.image_format)
        planned = len(
            video.sample_times(info.duration, settings.DETECTOR_VIDEO_FPS, settings.DETECTOR_VIDEO_MAX_FRAMES)
        )
        report = _report_progress(detection) if current else None
        if report:
            report(0, planned)
        verdict = video.analyse(
            detector, source, info, settings.DETECTOR_VIDEO_FPS, settings.DETECTOR_VIDEO_MAX_FRAMES, on_progress=report
        )
        storage = detection.image.storage
        tracks = []
        for track in verdict.tracks:
            stills = []
            for number, still in enumerate(track.stills, start=1):
                names = {}
                for kind, data in (("image", still.jpeg), ("heatmap", still.heatmap_png)):
                    if data:
                        names[kind] = storage.save(still_name(detection, track.id, number, kind), ContentFile(data))
                        written.append(names[kind])
                stills.append(
                    {
                        "seconds": still.seconds,
                        "fake_probability": detector.meta.calibration.probability(still.logit),
                        "image": names.get("image", ""),
                        "heatmap": names.get("heatmap", ""),
                    }
                )
            tracks.append(
                {
                    "id": track.id,
                    "fake_probability": track.fake_probability,
                    "label": track.label,
                    "first_seconds": track.first_seconds,
                    "last_seconds": track.last_seconds,
                    "decided": track.id == verdict.deciding_track,
                    "frames": [
                        {"seconds": f.seconds, "box": f.box, "fake_probability": f.fake_probability}
                        for f in track.frames
                    ],
                    "stills": stills,
                }
            )
    except OSError:  # the storage failed (transient): undo the stills, and let the caller retry
        for name in written:
            detection.image.storage.delete(name)
        raise
    except Exception as exc:  # a video that cannot be analysed (or the time limit) is recorded, never a 500
        log.exception("analysis of video %s failed", detection.id)
        for name in written:
            detection.image.storage.delete(name)
        _record_failure(detection, "video", exc)
    else:
        detection.status = Status.DONE
        detection.label = verdict.label
        detection.fake_probability = verdict.fake_probability
        detection.confidence = None
        detection.threshold = verdict.threshold
        detection.real_below = verdict.real_below
        detection.model_version = verdict.model_version
        detection.face_found = bool(verdict.tracks)
        detection.faces = []
        detection.tracks = tracks
        detection.frames_sampled = verdict.frames_sampled
        detection.decode_ms = verdict.decode_ms
        # Per model, the video's score is its most suspicious track's (an ensemble's members are not scored apart).
        detection.model_scores = [
            {
                **identity(detector),
                "fake_probability": verdict.fake_probability if verdict.tracks else None,
                "label": verdict.label,
                "face": None,
            }
        ]
        detection.duration_seconds = info.duration
        # What the file says of its origin (C2PA in MP4 and MOV, container tags), weighed by the images' one rule.
        found = provenance.read_video(source, detection.content_type, settings.DETECTOR_C2PA_TRUST_ANCHORS)
        ruling = provenance.rule(verdict.label, found)
        detection.provenance = [f.as_dict() for f in found]
        detection.model_label = verdict.label if ruling.label != verdict.label else ""
        detection.label, detection.verdict_reason = ruling.label, ruling.reason
        detection.error_message = ""
    finally:
        if opened is not None:
            opened.close()
    detection.processing_ms = round((time.perf_counter() - started) * 1000)
    try:
        record(detection, detector, current)
    except BaseException:
        for name in written:
            detection.image.storage.delete(name)
        raise
    log.info(
        "video %s analysed by %s: %s in %d ms", detection.pk, detector.version, detection.label, detection.processing_ms
    )
    return detection
