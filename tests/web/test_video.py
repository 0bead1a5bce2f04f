"""Video uploads through the site, the batch page and the API: checks, the queue, progress, the pages."""

from __future__ import annotations

import time
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from detector import dispatch, tasks
from detector.models import Detection, Kind, Label, Status
from detector.services import cleanup, detections
from tests.clips import BLUE, RED, Scene, Square, SquareDetector, audio_only_clip, make_clip
from tests.conftest import installed
from tests.web.conftest import stored_files

pytest.importorskip("av")

UPLOAD = reverse("detector:upload")
API = reverse("api:detections")


def fake_and_real(seconds=4.0, **kwargs) -> bytes:
    real = Square(BLUE, (10, 40), velocity=(8, 0))
    fake = Square(RED, (130, 40), velocity=(-4, 0), visible=(1.0, 3.5))
    return make_clip([Scene([real, fake])], seconds=seconds, **kwargs)


def clip_file(data: bytes | None = None, name="clip.mp4", content_type="video/mp4"):
    return SimpleUploadedFile(name, fake_and_real() if data is None else data, content_type=content_type)


@pytest.fixture
def squares(settings):
    """The square detector as the process's model; videos analysed at once where they are started."""
    settings.DETECTOR_VIDEO_WORKERS = 0
    with installed(SquareDetector()) as detector:
        yield detector


def test_a_video_is_answered_pending_then_analysed_off_the_request(
    alice, squares, django_capture_on_commit_callbacks, media_root
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == detection.get_absolute_url()
    assert detection.kind == Kind.VIDEO and detection.status == Status.PENDING and squares.prepared == 0
    assert (detection.image_format, detection.content_type) == ("MP4", "video/mp4")
    assert detection.duration_seconds == pytest.approx(4.0, abs=0.15) and detection.phash == ""
    page = alice.get(detection.get_absolute_url()).content.decode()
    assert "Queued" in page and "every sampled frame" in page

    for callback in callbacks:  # the commit: the video is started off the request
        callback()
    detection.refresh_from_db()
    assert detection.status == Status.DONE and detection.label == Label.DEEPFAKE
    assert detection.frames_sampled == detection.frames_planned == 8
    labels = sorted(t["label"] for t in detection.tracks)
    assert labels == ["Deepfake", "Real"] and sum(t["decided"] for t in detection.tracks) == 1
    stills = [s for t in detection.tracks for s in t["stills"]]
    assert stills and all((media_root / s["image"]).is_file() and (media_root / s["heatmap"]).is_file() for s in stills)


def test_the_result_page_shows_tracks_stills_and_the_timeline(
    alice, squares, django_capture_on_commit_callbacks, media_root
):
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    page = alice.get(detection.get_absolute_url()).content.decode()
    assert "Faces over time" in page and "This face decided the verdict." in page
    assert reverse("detector:timeline", args=[detection.pk]) in page
    assert "Not analysed: the sound" in page and "On screen 0:01–0:03" in page
    svg = alice.get(reverse("detector:timeline", args=[detection.pk]))
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml" and b"Face 1" in svg.content
    track = next(t for t in detection.tracks if t["decided"])
    still_page = alice.get(reverse("detector:still", args=[detection.pk, track["id"], 1]))
    assert still_page.status_code == 200 and "Where the model looked" in still_page.content.decode()
    image = alice.get(reverse("detector:still_file", args=[detection.pk, track["id"], 1, "image"]))
    heat = alice.get(reverse("detector:still_file", args=[detection.pk, track["id"], 1, "heatmap"]))
    assert image["Content-Type"] == "image/jpeg" and heat["Content-Type"] == "image/png"
    assert alice.get(reverse("detector:still", args=[detection.pk, track["id"], 9])).status_code == 404
    history = alice.get(reverse("detector:history")).content.decode()
    assert "Video · 0:04 · 2 faces" in history


def test_someone_elses_video_pictures_are_404(alice, squares, django_capture_on_commit_callbacks, client, other_user):
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    client.force_login(other_user)
    for url in (
        reverse("detector:timeline", args=[detection.pk]),
        reverse("detector:still", args=[detection.pk, 1, 1]),
        reverse("detector:still_file", args=[detection.pk, 1, 1, "image"]),
    ):
        assert client.get(url).status_code == 404


def test_the_api_gives_kind_duration_frames_and_tracks(api, squares, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(API, {"image": [clip_file()]})
    assert response.status_code == HTTPStatus.CREATED
    body = api.get(reverse("api:detection", args=[Detection.objects.get().pk])).json()
    assert body["kind"] == "video" and body["duration_seconds"] == pytest.approx(4.0, abs=0.15)
    assert body["frames_sampled"] == body["frames_planned"] == 8 and body["faces"] == []
    assert 0 <= body["decode_ms"] <= body["processing_ms"]
    fake = next(t for t in body["tracks"] if t["label"] == "Deepfake")
    assert fake["decided"] and body["fake_probability"] == pytest.approx(fake["fake_probability"])
    assert set(fake["frames"][0]) == {"seconds", "box", "fake_probability"}
    assert set(fake["frames"][0]["box"]) == {"x", "y", "width", "height"}
    still = fake["stills"][0]
    assert api.get(still["image_url"]).status_code == 200 and api.get(still["heatmap_url"]).status_code == 200


@pytest.mark.parametrize(
    "data, code, words",
    [
        (lambda: audio_only_clip(), "no_video", "no video stream"),
        (lambda: fake_and_real()[:3000], "damaged", "truncated or damaged"),
        (lambda: fake_and_real(seconds=3.0)[:-2500], "damaged", "truncated or damaged"),
        (lambda: make_clip(seconds=0.01, fps=5000), "frame_rate", "frames a second"),
    ],
)
def test_a_bad_video_is_refused_with_its_reason_and_nothing_is_stored(api, squares, media_root, data, code, words):
    response = api.post(API, {"image": [clip_file(data())]})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_the_video_limits_have_their_own_settings(alice, squares, settings, media_root):
    settings.DETECTOR_MAX_VIDEO_SECONDS = 2
    page = alice.post(UPLOAD, {"image": clip_file()}).content.decode()
    assert "The video lasts 0:04; videos up to 0:02 (minutes:seconds) are analysed." in page
    settings.DETECTOR_MAX_VIDEO_SECONDS, settings.DETECTOR_MAX_VIDEO_MB = 600, 0.001
    page = alice.post(UPLOAD, {"image": clip_file()}).content.decode()
    assert "The video is larger than 0.001 MB." in page
    settings.DETECTOR_MAX_VIDEO_MB, settings.DETECTOR_MAX_PIXELS = 200, 100 * 100
    page = alice.post(UPLOAD, {"image": clip_file()}).content.decode()
    assert "192x144 pixels" in page
    assert not Detection.objects.exists() and stored_files(media_root) == []


@pytest.mark.parametrize(
    "container, codec, content_type", [("mov", "libx264", "video/quicktime"), ("webm", "libvpx-vp9", "video/webm")]
)
def test_mov_and_webm_are_taken_too(alice, squares, django_capture_on_commit_callbacks, container, codec, content_type):
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file(fake_and_real(container=container, codec=codec), f"c.{container}")})
    detection = Detection.objects.get()
    assert detection.content_type == content_type and detection.status == Status.DONE
    assert detection.label == Label.DEEPFAKE


def test_a_video_without_a_face_is_no_face(alice, squares, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file(make_clip([Scene()], seconds=2.0))})
    detection = Detection.objects.get()
    assert detection.label == Label.NO_FACE and detection.fake_probability is None and detection.tracks == []
    assert "No face was found in any of the 4 frames" in alice.get(detection.get_absolute_url()).content.decode()


def test_progress_is_stored_as_it_goes_and_shown_by_the_status_endpoint(
    alice, squares, django_capture_on_commit_callbacks, monkeypatch
):
    from detector.ml.inference import video

    seen = []
    original = video.analyse

    def watching(detector, source, info, fps, max_frames, on_progress=None, **kwargs):
        def progress(done, planned):
            on_progress(done, planned)
            row = Detection.objects.get()
            status = alice.get(reverse("detector:status", args=[row.pk])).json()
            seen.append((row.frames_sampled, row.frames_planned, status["frames_sampled"], row.status))

        return original(detector, source, info, fps, max_frames, on_progress=progress, batch_frames=3, **kwargs)

    monkeypatch.setattr(video, "analyse", watching)
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    assert seen == [(3, 8, 3, "analysing"), (6, 8, 6, "analysing"), (8, 8, 8, "analysing")]


def test_with_a_broker_a_video_goes_to_its_own_job(
    alice, squares, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = {"image": [], "video": []}
    monkeypatch.setattr(tasks.analyse_detection, "delay", lambda pk: sent["image"].append(pk))
    monkeypatch.setattr(tasks.analyse_video, "delay", lambda pk: sent["video"].append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    assert sent == {"image": [], "video": [str(detection.pk)]} and detection.status == Status.PENDING
    assert tasks.analyse_video.apply(args=[str(detection.pk)]).get() == Status.DONE  # what a worker runs
    detection.refresh_from_db()
    assert detection.label == Label.DEEPFAKE and detection.frames_sampled == 8


def test_the_video_job_has_its_own_limits_and_is_never_redelivered_by_the_broker(settings):
    job = tasks.analyse_video
    assert job.acks_late is False and job.soft_time_limit == settings.DETECTOR_VIDEO_TIME_LIMIT
    assert job.soft_time_limit > settings.CELERY_TASK_SOFT_TIME_LIMIT


def stored_video(alice, squares, captured, **fields) -> Detection:
    with captured(execute=False):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    Detection.objects.filter(pk=detection.pk).update(**fields)
    detection.refresh_from_db()
    return detection


def test_a_video_whose_progress_moved_recently_is_never_taken_twice(
    alice, squares, django_capture_on_commit_callbacks, settings
):
    detection = stored_video(
        alice, squares, django_capture_on_commit_callbacks, status=Status.ANALYSING, progress_at=timezone.now()
    )
    assert detections.claim(str(detection.pk)) is None
    assert dispatch.resume_videos() == []
    old = timezone.now() - timedelta(minutes=settings.DETECTOR_VIDEO_STALLED_MINUTES + 1)
    Detection.objects.filter(pk=detection.pk).update(created_at=old - timedelta(hours=1))
    assert cleanup.cleanup(timedelta(minutes=10), dry_run=True).stuck == []
    Detection.objects.filter(pk=detection.pk).update(progress_at=old)  # it stopped moving: taken up again
    assert cleanup.cleanup(timedelta(minutes=10), dry_run=True).stuck == [str(detection.pk)]
    assert dispatch.resume_videos() == [str(detection.pk)]
    detection.refresh_from_db()
    assert detection.status == Status.DONE


def finished(detection: Detection, seconds: float = 10.0) -> Detection:
    """The detection once another thread has finished it (or as it stands after ``seconds``)."""
    deadline = time.monotonic() + seconds
    detection.refresh_from_db()
    while detection.status != Status.DONE and time.monotonic() < deadline:
        time.sleep(0.05)
        detection.refresh_from_db()
    return detection


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_process_pool_analyses_the_video_and_picks_up_unfinished_ones(client, settings):
    settings.DETECTOR_VIDEO_WORKERS = 1
    with installed(SquareDetector()):
        response = client.post(UPLOAD, {"image": clip_file()})
        assert response.status_code == HTTPStatus.FOUND
        detection = finished(Detection.objects.get())
        assert detection.status == Status.DONE and detection.label == Label.DEEPFAKE
        # A video left pending by a process that stopped: the next one takes it up when it starts.
        Detection.objects.filter(pk=detection.pk).update(status=Status.PENDING, tracks=[], label="")
        assert dispatch.resume_videos() == [str(detection.pk)]
        detection = finished(detection)
        assert detection.status == Status.DONE and detection.attempts == 2


def test_deleting_a_video_removes_its_stills(alice, squares, django_capture_on_commit_callbacks, media_root):
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    assert len(stored_files(media_root)) > 3
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("detector:delete", args=[detection.pk]))
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_the_batch_page_takes_images_and_videos_together(alice, squares, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(reverse("detector:batch"), {"images": [clip_file(), clip_file(name="b.webm", data=b"x")]})
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "1 checked, 1 not accepted" in page
    assert Detection.objects.get().kind == Kind.VIDEO


def test_a_videos_report_lists_its_tracks(alice, squares, django_capture_on_commit_callbacks):
    import io

    from pypdf import PdfReader

    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    document = alice.get(reverse("detector:report", args=[detection.pk, "json"])).json()
    assert document["file"]["kind"] == "video" and document["frames_sampled"] == 8
    assert sorted(t["label"] for t in document["tracks"]) == ["Deepfake", "Real"]
    pdf = alice.get(reverse("detector:report", args=[detection.pk, "pdf"]))
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Faces over time (video)" in text and "decided the verdict" in text
    reader = PdfReader(io.BytesIO(pdf.content))
    images = sum(len(page.images) for page in reader.pages)
    stills = sum(len(t["stills"]) for t in detection.tracks)
    assert images >= 1 + stills  # the timeline and every still
    assert "time(s)" not in text and "was not checked on this platform before" in text


def test_a_shared_video_report_has_the_timeline_tracks_and_stills(alice, squares, django_capture_on_commit_callbacks):
    from django.test import Client

    from detector.services import reports

    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    alice.post(reverse("detector:share", args=[detection.pk]))
    detection.refresh_from_db()
    token = reports.share_token(detection)
    stranger = Client()
    page = stranger.get(reverse("detector:shared", args=[token])).content.decode()
    assert "Faces over time" in page and reverse("detector:shared_timeline", args=[token]) in page
    assert stranger.get(reverse("detector:shared_timeline", args=[token]))["Content-Type"] == "image/svg+xml"
    track = detection.tracks[0]
    still = reverse("detector:shared_still_file", args=[token, track["id"], 1, "image"])
    assert still in page and stranger.get(still)["Content-Type"] == "image/jpeg"
    assert reverse("detector:still", args=[detection.pk, track["id"], 1]) not in page  # nothing of the owner's


def test_a_videos_provenance_is_read_from_its_container(alice, squares, django_capture_on_commit_callbacks):
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata["com.apple.quicktime.make"] = "Apple"
        out.metadata["com.apple.quicktime.model"] = "iPhone 15"
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(20):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((120, 160, 3), 90, np.uint8), format="rgb24")))
        out.mux(stream.encode())
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file(buf.getvalue())})
    detection = Detection.objects.get()
    assert [f["strength"] for f in detection.provenance] == ["camera"]
    assert "Apple iPhone 15" in detection.provenance[0]["text"]
    assert "Apple iPhone 15" in alice.get(detection.get_absolute_url()).content.decode()


def test_the_schema_describes_videos(client):
    schema = client.get(reverse("api:schema"), {"format": "json"}).json()
    detection = schema["components"]["schemas"]["Detection"]["properties"]
    assert {"kind", "duration_seconds", "frames_planned", "frames_sampled", "decode_ms", "tracks"} <= set(detection)
    track = schema["components"]["schemas"]["Track"]["properties"]
    assert {"id", "fake_probability", "label", "first_seconds", "last_seconds", "frames", "stills"} <= set(track)
    assert "/api/v1/detections/{id}/tracks/{track}/stills/{number}/{kind}" in schema["paths"]


def test_a_video_whose_analysis_fails_is_recorded_failed_and_leaves_no_stills(
    alice, squares, django_capture_on_commit_callbacks, media_root, monkeypatch
):
    def broken(prepared):
        raise RuntimeError("the heatmaps broke")

    monkeypatch.setattr(squares, "heatmaps", broken)
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(UPLOAD, {"image": clip_file()})
    detection = Detection.objects.get()
    assert detection.status == Status.FAILED and detection.label == Label.NO_VERDICT
    assert detection.error_message == "The video could not be analysed: the heatmaps broke"
    page = alice.get(detection.get_absolute_url()).content.decode()
    assert "another copy of the video" in page


def test_a_storage_failure_while_the_stills_are_written_undoes_them_and_leaves_the_video_to_retry(
    alice, squares, django_capture_on_commit_callbacks, media_root, monkeypatch
):
    from django.core.files.storage import FileSystemStorage

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alice.post(UPLOAD, {"image": clip_file()})
    saved, original = [], FileSystemStorage.save

    def failing(self, name, content, **kwargs):
        if len(saved) == 3:
            raise OSError(28, "No space left on device")
        saved.append(name)
        return original(self, name, content, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "save", failing)
    callbacks[0]()  # the in-process path logs it; a worker would retry
    detection = Detection.objects.get()
    assert detection.status == Status.ANALYSING and detection.tracks == []
    assert not (media_root / "stills").exists() or list((media_root / "stills").iterdir()) == []
    monkeypatch.setattr(FileSystemStorage, "save", original)
    Detection.objects.filter(pk=detection.pk).update(progress_at=timezone.now() - timedelta(hours=1))
    assert dispatch.resume_videos() == [str(detection.pk)]
    detection.refresh_from_db()
    assert detection.status == Status.DONE and detection.label == Label.DEEPFAKE


@pytest.mark.parametrize("broker, workers, started", [(False, 1, True), (True, 1, False), (False, 0, False)])
def test_a_server_starting_without_a_broker_takes_up_unfinished_videos(settings, monkeypatch, broker, workers, started):
    from django.apps import apps

    from detector import apps as detector_apps

    settings.CELERY_TASK_ALWAYS_EAGER, settings.DETECTOR_VIDEO_WORKERS = not broker, workers
    settings.DETECTOR_PRELOAD = False
    timers = []

    class Timer:
        def __init__(self, delay, function):
            timers.append((delay, function))

        def start(self):
            pass

    monkeypatch.setattr(detector_apps, "serves_requests", lambda: True)
    monkeypatch.setattr(detector_apps.threading, "Timer", Timer)
    apps.get_app_config("detector").ready()
    resumed = [f for _, f in timers if f is detector_apps._resume_videos]
    assert resumed == ([detector_apps._resume_videos] if started else [])
    # the same server also sends the callbacks' retries on a timer of its own, having no beat
    assert len(timers) == (2 if started else 0)


def test_a_video_counts_as_one_check(alice, db, squares, settings, django_capture_on_commit_callbacks):
    """(Signed in: a refused file counts against an anonymous visitor's allowance, never against an account's.)"""
    client = alice
    settings.DETECTOR_RATE_LIMIT = "3/h"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(UPLOAD, {"image": clip_file()}).status_code == HTTPStatus.FOUND
    assert client.post(UPLOAD, {"image": clip_file(audio_only_clip())}).status_code == HTTPStatus.BAD_REQUEST
    assert "You can check <span data-left-count>2</span> more files now" in client.get(UPLOAD).content.decode()
    assert Detection.objects.get().frames_sampled == 8  # 8 frames analysed, one check used
