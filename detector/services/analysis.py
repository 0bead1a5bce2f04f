"""The one way a detection gets its verdict, in the request or on a worker: claim, judge, save."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone

from .. import provenance
from ..ml.preprocessing import DecodedImage
from ..models import Detection, Label, Status
from ..uploads import decode_stored
from .detections import claim
from .inference import get_detector

log = logging.getLogger(__name__)


def run(
    detection, decoded: DecodedImage | None = None, new_attempt: bool = True, data: bytes | None = None
) -> Detection | None:
    """Claim the detection (a row, or its id) and analyse it; None where there was nothing to do (gone,
    finished, given up).

    ``decoded`` and ``data``: the pixels the upload's checks decoded and the bytes they checked, where the
    analysis runs in the same request; otherwise the stored original is read (and decoded) once.
    """
    claimed = claim(detection, new_attempt)
    return None if claimed is None else analyse(claimed, decoded, data)


def analyse(detection: Detection, decoded: DecodedImage | None = None, data: bytes | None = None) -> Detection:
    """Run the detector on a claimed detection and record the verdict, or the failure and its reason.

    A missing model (DetectorUnavailable) or unreadable storage (OSError) is
    raised, not recorded: for a worker they are transient, and the job is retried.
    """
    detector = get_detector()
    if data is None:
        with detection.image.open("rb") as f:
            data = f.read()
    started = time.perf_counter()
    try:
        verdict = detector.judge(decoded or decode_stored(data))
    except Exception as exc:  # anything wrong with this image (or a time limit) is recorded, never a 500
        log.exception("analysis of %s failed", detection.id)
        detection.status = Status.FAILED
        detection.label = Label.NO_VERDICT
        detection.error_message = f"The image could not be analysed: {exc}"[:1000]
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
                **({"scores": f.scores} if f.scores else {}),
            }
            for f in verdict.faces
        ]
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
    detection.analysed_at = timezone.now()
    detection.save()
    log.info("detection %s analysed: %s in %d ms", detection.pk, detection.label, detection.processing_ms)
    return detection
