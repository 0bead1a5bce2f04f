"""Videos: recognising and probing clips, sampling frames, tracking faces and the per-track rule.

(ml.inference.video)
"""

from __future__ import annotations

import io

import pytest

from detector.ml.inference import video
from detector.ml.inference.faces import FaceBox
from detector.ml.labels import LABEL_FAKE, LABEL_NO_FACE, LABEL_REAL
from tests.clips import BLUE, RED, Scene, Square, SquareDetector, audio_only_clip, make_clip

av = pytest.importorskip("av")

LIMITS = {"max_seconds": 600, "max_pixels": 40_000_000}


def probe(data: bytes, **limits):
    container = video.container_of(data[:64])
    return video.probe(io.BytesIO(data), **{**LIMITS, **limits}, container_name=container)


@pytest.mark.parametrize(
    "container, codec, name",
    [("mp4", "libx264", "MP4"), ("mov", "libx264", "MOV"), ("webm", "libvpx-vp9", "WEBM"), ("mkv", "libx264", "MKV")],
)
def test_each_container_is_recognised_from_its_bytes_and_probed(container, codec, name):
    data = make_clip(seconds=2.0, container=container, codec=codec)
    assert video.container_of(data[:64]) == name
    info = probe(data)
    assert (info.container, info.width, info.height) == (name, 192, 144)
    assert info.duration == pytest.approx(2.0, abs=0.15) and info.frame_rate == pytest.approx(10)
    assert info.first_frame.size == (192, 144)


def test_images_and_other_files_are_not_taken_for_videos(jpeg_bytes):
    assert video.container_of(jpeg_bytes[:64]) is None
    assert video.container_of(b"%PDF-1.7\n") is None
    assert video.container_of(b"") is None


def test_a_file_without_a_video_stream_says_so():
    with pytest.raises(video.VideoError) as err:
        probe(audio_only_clip())
    assert err.value.code == "no_video" and "no video stream" in str(err.value)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_truncated_file_is_damaged(keep):
    data = make_clip(seconds=4.0)
    with pytest.raises(video.VideoError) as err:
        probe(data[: int(len(data) * keep)])
    assert err.value.code in ("damaged", "no_frames")


def test_a_header_followed_by_garbage_is_damaged():
    data = make_clip(seconds=1.0)
    with pytest.raises(video.VideoError):
        probe(data[:64] + bytes(range(256)) * 40)


def test_limits_on_duration_and_frame_size_have_their_own_messages():
    data = make_clip(seconds=3.0)
    with pytest.raises(video.VideoError) as err:
        probe(data, max_seconds=2)
    assert err.value.code == "too_long" and "lasts 0:03; videos up to 0:02" in str(err.value)
    with pytest.raises(video.VideoError) as err:
        probe(data, max_pixels=100 * 100)
    assert err.value.code == "too_many_pixels" and "192x144" in str(err.value)


def test_an_absurd_frame_rate_is_refused():
    with pytest.raises(video.VideoError) as err:
        probe(make_clip(seconds=0.01, fps=5000))
    assert err.value.code == "frame_rate"


def test_one_frame_is_a_video_of_one_sample():
    info = probe(make_clip(times=[0.0]))
    assert info.duration > 0
    assert video.sample_times(info.duration, 2, 120) == [pytest.approx(info.duration / 2)]


def test_rotation_metadata_turns_the_frames_upright():
    scene = Scene([Square(RED, (10, 10), side=30)])
    info = probe(make_clip([scene], seconds=1.0, rotation=-90))
    assert info.rotation == 270 and (info.width, info.height) == (144, 192)
    # Turned clockwise: the square near the top left is now near the top right.
    box = info.first_frame.convert("RGB").getbbox() and _red_box(info.first_frame)
    assert box[0] > 144 // 2 and box[1] < 192 // 2


def _red_box(image):
    from tests.clips import squares_in

    (face,) = squares_in(image)
    return face.x, face.y


def test_samples_are_even_and_capped():
    assert video.sample_times(10.0, 2, 120) == [pytest.approx(0.25 + 0.5 * k) for k in range(20)]
    capped = video.sample_times(600.0, 2, 120)
    assert len(capped) == 120 and capped[0] == pytest.approx(2.5) and capped[-1] == pytest.approx(597.5)


def test_the_frame_on_screen_at_each_time_is_taken_with_a_variable_frame_rate():
    # Brightness tells each frame; the frames come at irregular times.
    times = [0.0, 0.1, 0.15, 0.9, 1.0, 1.6, 2.9]

    def scenes():
        return [Scene(background=(20 + 30 * k,) * 3, until=t) for k, t in enumerate(times[1:] + [99.0])]

    data = make_clip(scenes(), times=times, fps=100)
    wanted = [0.05, 0.5, 1.2, 2.0, 3.0]
    got = list(video.frames_at(io.BytesIO(data), wanted, 0))
    shown = [round((im.getpixel((5, 5))[0] - 20) / 30) for _, im in got]
    assert [t for t, _ in got] == wanted
    assert shown == [0, 2, 4, 5, 6]  # the frame that came last before each time


def test_seeking_far_ahead_gives_the_same_frames_as_decoding_through():
    scene = [Scene(background=(k * 10,) * 3, until=(k + 1) * 1.0) for k in range(12)]
    data = make_clip(scene, seconds=12.0, fps=10)
    got = list(video.frames_at(io.BytesIO(data), [0.5, 5.5, 11.5], 0))
    assert [round(im.getpixel((5, 5))[0] / 10) for _, im in got] == [0, 5, 11]


def boxes(*xs, y=50, side=40):
    return [FaceBox(x, y, side, side, 1.0) for x in xs]


def test_two_faces_crossing_keep_their_tracks():
    tracker = video.Tracker()
    ids = []
    for k in range(9):  # a small face goes right, a large one left; they cross at k = 4
        t = k * 0.5
        small = FaceBox(20 + 40 * k, 60, 30, 30, 1.0)
        large = FaceBox(340 - 40 * k, 40, 60, 60, 1.0)
        ids.append(tracker.update(t, [small, large]))
    assert all(i == [1, 2] for i in ids)


def test_a_cut_starts_new_tracks():
    tracker = video.Tracker()
    assert tracker.update(0.0, boxes(50)) == [1]
    assert tracker.update(0.5, boxes(52)) == [1]
    assert tracker.update(1.0, boxes(54), cut=True) == [2]


def test_a_face_leaving_and_returning_soon_is_one_track_later_a_new_one():
    tracker = video.Tracker(gap=1.5)
    assert tracker.update(0.0, boxes(50)) == [1]
    assert tracker.update(0.5, []) == []
    assert tracker.update(1.0, boxes(51)) == [1]  # back after half a second, where it was
    for t in (1.5, 2.0, 2.5, 3.0):
        tracker.update(t, [])
    assert tracker.update(3.5, boxes(51)) == [2]  # back after 2.5 s: a new track


def test_a_new_person_elsewhere_starts_a_new_track():
    tracker = video.Tracker()
    assert tracker.update(0.0, boxes(20)) == [1]
    assert tracker.update(0.5, boxes(22, 300)) == [1, 2]


def test_a_track_scores_the_mean_of_its_most_suspicious_half():
    assert video.track_logit([4.0, -2.0, 0.0, 2.0]) == pytest.approx(3.0)
    assert video.track_logit([-1.0]) == -1.0
    assert video.track_logit([1.0, 3.0, 2.0]) == pytest.approx(3.0)


def analyse(scenes, seconds=4.0, fps=2, max_frames=120, **clip):
    data = make_clip(scenes, seconds=seconds, **clip)
    info = probe(data)
    return video.analyse(SquareDetector(), io.BytesIO(data), info, fps, max_frames, heatmaps=True)


def test_the_most_suspicious_track_decides_and_each_is_scored_on_its_own():
    real = Square(BLUE, (10, 40), velocity=(10, 0))
    fake = Square(RED, (130, 40), velocity=(-5, 0), visible=(1.0, 3.0))
    result = analyse([Scene([real, fake])])
    assert result.frames_sampled == 8
    tracks = {t.label: t for t in result.tracks}
    assert set(tracks) == {LABEL_REAL, LABEL_FAKE}
    assert len(tracks[LABEL_REAL].frames) == 8 and len(tracks[LABEL_FAKE].frames) == 4
    assert tracks[LABEL_FAKE].first_seconds == pytest.approx(1.25) and tracks[LABEL_FAKE].last_seconds == 2.75
    assert result.label == LABEL_FAKE and result.deciding_track == tracks[LABEL_FAKE].id
    assert (
        result.fake_probability == pytest.approx(tracks[LABEL_FAKE].fake_probability) and result.fake_probability > 0.99
    )
    still = tracks[LABEL_FAKE].stills[0]
    assert still.jpeg[:2] == b"\xff\xd8" and still.heatmap_png[:4] == b"\x89PNG"
    assert len(tracks[LABEL_REAL].stills) == video.KEEP_STILLS


def test_a_face_seen_once_does_not_decide_while_a_longer_track_exists():
    real = Square(BLUE, (10, 40))
    flash = Square(RED, (130, 40), visible=(1.0, 1.5))
    result = analyse([Scene([real, flash])])
    assert len(result.tracks) == 2 and result.label == LABEL_REAL


def test_a_cut_splits_a_face_into_two_tracks():
    first = Scene([Square(BLUE, (20, 40))], background=(40, 40, 40), until=2.0)
    second = Scene([Square(BLUE, (22, 40))], background=(220, 220, 220))
    assert len(analyse([first, second]).tracks) == 2


def test_no_face_in_any_frame_is_no_face_without_a_score():
    result = analyse([Scene()])
    assert result.label == LABEL_NO_FACE and result.fake_probability is None and result.tracks == []


def test_progress_is_reported_as_frames_are_scored():
    data = make_clip([Scene([Square(BLUE, (10, 40))])], seconds=5.0)
    seen = []
    video.analyse(
        SquareDetector(),
        io.BytesIO(data),
        probe(data),
        2,
        120,
        on_progress=lambda d, p: seen.append((d, p)),
        batch_frames=4,
    )
    assert seen == [(4, 10), (8, 10), (10, 10)]


def test_the_shipped_model_finds_and_tracks_a_real_face(shipped_detector):
    from PIL import Image

    from tests.conftest import portrait_bytes

    face = Image.open(io.BytesIO(portrait_bytes())).convert("RGB").resize((256, 256))
    frames = []
    for k in range(6):
        canvas = Image.new("RGB", (480, 320), (90, 90, 90))
        canvas.paste(face, (20 + 30 * k, 30))
        frames.append(canvas)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = 480, 320, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    result = video.analyse(shipped_detector, io.BytesIO(data), probe(data), 2, 120)
    assert result.frames_sampled == 6 and len(result.tracks) == 1
    assert len(result.tracks[0].frames) == 6 and result.label != LABEL_NO_FACE
    assert 0.0 <= result.fake_probability <= 1.0 and result.model_version == shipped_detector.version


def test_a_box_around_a_smaller_face_is_the_same_face_seen_twice():
    import numpy as np

    from detector.ml.inference.preprocessing import FaceCrop

    pixels = np.zeros((4, 4, 3), np.uint8)
    face = FaceCrop(FaceBox(100, 100, 40, 40, 0.9), pixels)
    around = FaceCrop(FaceBox(60, 60, 160, 160, 0.6), pixels)
    beside = FaceCrop(FaceBox(300, 100, 44, 44, 0.9), pixels)
    overlapping = FaceCrop(FaceBox(120, 90, 50, 50, 0.8), pixels)  # alike in size: two people close together
    assert video.distinct([around, face, beside]) == [face, beside]
    assert video.distinct([face, overlapping]) == [face, overlapping]


def test_a_tail_that_does_not_decode_is_not_stood_in_for_by_the_last_frame():
    data = make_clip([Scene([Square(BLUE, (10, 40))])], seconds=8.0, container="mkv")  # its index comes first
    times = video.sample_times(8.0, 2, 120)
    got = [t for t, _ in video.frames_at(io.BytesIO(data[: int(len(data) * 0.7)]), times, 0)]
    assert 0 < len(got) < len(times) and got == times[: len(got)]
