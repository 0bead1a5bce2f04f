"""Where an analysis runs: in the request without a broker, on a Celery worker with one.

It decides where an analysis runs, and queues every job but one kind: beat's sweep (``tasks.sweep``), which runs
on a worker and so always has the broker, queues the stuck detections it finds itself. It sits above ``tasks`` and
the services (which import neither it nor a task) and below the views, the API and the commands that submit
uploads or queue detections again.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from .ml.inference.bundle import BundleError
from .models import Detection, Kind, Reanalysis, Status
from .refusals import STORAGE_FAILED, Refusal
from .services import analysis, fetch, reanalysis, webhooks
from .services.detections import display_name, store_upload
from .services.inference import DetectorUnavailable, get_detector
from .services.limits import count_refusal, count_upload, not_sent, rate_refusal
from .tasks import analyse_detection, analyse_video, kick_webhooks, reanalyse_detection
from .uploads import CheckedImage, CheckedVideo, check_upload

log = logging.getLogger(__name__)


def runs_here() -> bool:
    """Whether analyses run in this process (no broker configured)."""
    return settings.CELERY_TASK_ALWAYS_EAGER


def submit(checked: CheckedImage | CheckedVideo, original_name: str, request, source_url: str = "") -> Detection:
    """The upload flow every caller goes through (form, batch, API): store, count, then analyse or queue.

    In the request the analysis gets the pixels the checks decoded; a worker decodes the stored original.
    Once the upload is stored, nothing that fails afterwards (the broker, the database) loses it or makes the
    answer an error: it stays ``pending``, the answer says so, and the sweep or ``cleanup_detections`` takes it up.
    A video is never analysed in the request: it is answered ``pending`` at once (see :func:`start_video`).
    """
    detection = store_upload(checked, original_name, request, source_url)
    count_upload(request)
    if detection.is_video:
        pk = str(detection.pk)
        transaction.on_commit(lambda: start_video(pk))
        return detection
    if runs_here():
        try:
            analysed = analysis.run(detection, checked.decoded, data=checked.data) or detection
        except DatabaseError:
            log.exception("detection %s is stored but could not be analysed now; it stays pending", detection.pk)
            return detection
        transaction.on_commit(send_webhooks_soon)
        return analysed
    pk = str(detection.pk)
    transaction.on_commit(lambda: queue(pk))
    return detection


_videos: ThreadPoolExecutor | None = None
_videos_lock = threading.Lock()


def _video_pool() -> ThreadPoolExecutor:
    """This process's bounded pool for videos (without a broker): ``DETECTOR_VIDEO_WORKERS`` at a time."""
    global _videos
    with _videos_lock:
        if _videos is None:
            _videos = ThreadPoolExecutor(settings.DETECTOR_VIDEO_WORKERS, thread_name_prefix="video")
        return _videos


def _analyse_video(pk: str) -> None:
    try:
        analysis.run(pk)
    except Exception:  # the model, the storage or the database is unavailable: it stays unfinished for the
        log.exception("video %s could not be analysed now; it stays unfinished", pk)  # sweep or a restart
    send_webhooks_soon()


def _send_webhooks_in_thread() -> None:
    close_old_connections()
    try:
        webhooks.send_due()
    except Exception:  # the database: the next analysis or the periodic timer tries again
        log.exception("callbacks could not be sent now")
    finally:
        connection.close()


def send_webhooks_soon() -> None:
    """The callbacks that are due, sent off the request: by a worker where there is a broker, else by this process's
    pool (never in the request thread; Celery's eager mode would run them there)."""
    if not runs_here():
        kick_webhooks()
        return
    try:
        if not webhooks.has_due():
            return
    except DatabaseError:
        return
    _video_pool().submit(_send_webhooks_in_thread)


def start_webhook_timer(interval: float) -> threading.Timer:
    """Without a broker there is no beat: a timer in this process sends the retries that fall due."""

    def tick():
        send_webhooks_soon()
        start_webhook_timer(interval)

    timer = threading.Timer(interval, tick)
    timer.daemon = True
    timer.start()
    return timer


def _analyse_in_thread(pk: str) -> None:
    close_old_connections()
    try:
        _analyse_video(pk)
    finally:
        connection.close()


def start_video(pk: str) -> bool:
    """Have a stored video analysed off the request thread: by a worker where there is a broker, else by this
    process's pool (or, with ``DETECTOR_VIDEO_WORKERS=0``, at once in this thread)."""
    if not runs_here():
        return queue(pk)
    if settings.DETECTOR_VIDEO_WORKERS <= 0:
        _analyse_video(pk)
        return True
    _video_pool().submit(_analyse_in_thread, pk)
    return True


def resume_videos() -> list[str]:
    """Videos left unfinished by a process that stopped (without a broker): queued again in this process's
    pool, when it starts. A video whose progress moved recently is being analysed elsewhere and is left to it."""
    if not runs_here():
        return []
    stalled = timezone.now() - timedelta(minutes=settings.DETECTOR_VIDEO_STALLED_MINUTES)
    unfinished = Detection.objects.filter(kind=Kind.VIDEO, status__in=Status.unfinished()).exclude(
        status=Status.ANALYSING, progress_at__gte=stalled
    )
    pks = [str(pk) for pk in unfinished.values_list("pk", flat=True)]
    for pk in pks:
        start_video(pk)
    if pks:
        log.warning("resumed %d unfinished videos", len(pks))
    return pks


def queue(pk: str) -> bool:
    """Hand one detection to the workers; False (and logged) where the broker cannot take it now."""
    try:
        video = Detection.objects.filter(pk=pk, kind=Kind.VIDEO).exists()
        (analyse_video if video else analyse_detection).delay(pk)
    except Exception:  # the broker is down or refuses: kombu and redis raise many kinds
        log.exception("detection %s is stored but could not be queued; the sweep will queue it", pk)
        return False
    return True


@dataclass
class Outcome:
    """What became of one file of a batch: a detection, or the reason it was refused."""

    name: str
    detection: Detection | None = None
    refusal: Refusal | None = None


def submit_each(uploads: list, request) -> list[Outcome]:
    """Submit every file on its own; a refused file stops no other. Raises DetectorUnavailable before any.

    What fits in the client's allowance goes; once it is used up, the rest is marked "not sent" with when it can
    go, and counts nothing.
    """
    get_detector()
    outcomes, refusal = [], None
    for upload in uploads:
        refusal = refusal or rate_refusal(request)
        if refusal:  # what fits has gone; the rest says when it can go
            outcomes.append(Outcome(display_name(upload.name), refusal=not_sent(refusal.retry_after or 60)))
        else:
            outcomes.append(_submit_one(upload, request))
    return outcomes


def _submit_one(upload, request) -> Outcome:
    name = display_name(upload.name)
    try:
        checked = check_upload(upload)
    except ValidationError as exc:
        count_refusal(request)
        return Outcome(name, refusal=Refusal.from_validation_error(exc))
    try:
        return Outcome(name, detection=submit(checked, upload.name, request))
    except OSError:
        log.exception("upload %s of a batch could not be stored", name)
        return Outcome(name, refusal=Refusal("storage_unavailable", STORAGE_FAILED))


def submit_link(url: str, request) -> Outcome:
    """A check by link: the file fetched (``services.fetch``), then checked and submitted as an upload is, its link
    kept (``source_url``). Raises FetchRefused where the link cannot be fetched."""
    fetched = fetch.fetch(url)
    name = display_name(fetched.file.name)
    try:
        checked = check_upload(fetched.file)
    except ValidationError as exc:
        count_refusal(request)
        return Outcome(name, refusal=Refusal.from_validation_error(exc, field="url"))
    try:
        return Outcome(name, detection=submit(checked, fetched.file.name, request, fetched.url))
    except OSError:
        log.exception("the file of link %s could not be stored", url)
        return Outcome(name, refusal=Refusal("storage_unavailable", STORAGE_FAILED))


@dataclass
class Requeued:
    analysed: list[str]  # here and now (no broker)
    queued: list[str]  # handed to the workers
    failed: list[str]  # gave up (too many attempts), the image could not be analysed, or the broker is down


def requeue(detection_ids: list[str]) -> Requeued:
    """Have unfinished detections (a cleanup's ``stuck``) analysed again, where analyses run."""
    done = Requeued([], [], [])
    for pk in detection_ids:
        if not runs_here():
            (done.queued if queue(pk) else done.failed).append(pk)
            continue
        if settings.DETECTOR_VIDEO_WORKERS > 0 and Detection.objects.filter(pk=pk, kind=Kind.VIDEO).exists():
            start_video(pk)  # this process's video pool: never in the caller's thread
            done.queued.append(pk)
            continue
        detection = analysis.run(pk)
        if detection is None:
            detection = Detection.objects.filter(pk=pk).first()
        ok = detection is not None and detection.status == Status.DONE
        (done.analysed if ok else done.failed).append(pk)
    return done


class BrokerUnavailable(Exception):
    """Nothing could be handed to the workers."""


def _reanalyse_here(run_id: int, ids: list[str], on_each=None) -> None:
    for pk in ids:
        try:
            outcome = reanalysis.reanalyse_one(run_id, pk)
        except (OSError, DatabaseError, BundleError, DetectorUnavailable) as exc:
            log.error("re-analysis %s of %s failed: %s", run_id, pk, exc)
            reanalysis.count(run_id, "failed")
            outcome = "failed"
        if on_each:
            on_each(pk, outcome)
    send_webhooks_soon()  # the callbacks of the batch's analyses


def _reanalyse_in_thread(run_id: int, ids: list[str]) -> None:
    close_old_connections()
    try:
        _reanalyse_here(run_id, ids)
    finally:
        connection.close()


def start_reanalysis(run: Reanalysis, ids: list[str], wait: bool = False, on_each=None) -> str:
    """Have a planned batch (``services.reanalysis.plan``) analysed: by the workers where there is a broker,
    else in this process, in its background pool (``wait``: in this thread, ``on_each(pk, outcome)`` after
    each). Returns where it runs. Raises BrokerUnavailable (the batch deleted) where no job could be queued."""
    if runs_here():
        if wait or settings.DETECTOR_VIDEO_WORKERS <= 0:
            _reanalyse_here(run.pk, ids, on_each)
            return "here"
        _video_pool().submit(_reanalyse_in_thread, run.pk, ids)
        return "in the background"
    for n, pk in enumerate(ids):
        try:
            reanalyse_detection.delay(run.pk, pk)
        except Exception as exc:  # the broker is down or refuses: kombu and redis raise many kinds
            log.exception("re-analysis %s: the broker took %d of %d jobs", run.pk, n, len(ids))
            if n == 0:
                run.delete()
                raise BrokerUnavailable("the job queue is unavailable; nothing was queued") from exc
            Reanalysis.objects.filter(pk=run.pk).update(failed=F("failed") + len(ids) - n)
            reanalysis.finish_if_done(run.pk)
            break
    return "on the workers"
