"""Video -> verdict: probe a clip, sample frames evenly, link faces into tracks, score each track.

Django-free, like the rest of ``ml``. Decoding is PyAV's (FFmpeg inside its wheels). Frames are streamed: the
clip is read from its file (never held in memory), decoded one frame at a time, and only the few stills shown
on the result page are kept.

The rule, documented once here and on the result page:

- frames are sampled at ``fps`` a second, evenly over the whole clip, at most ``max_frames`` of them;
- a box the face finder draws around a smaller face of the same frame is dropped (``distinct``);
- faces found in consecutive samples are linked into a track when the box lies where the track's motion
  predicts and its size is alike (``Tracker``); a scene cut, or a face unseen for longer than
  ``TRACK_GAP_SECONDS``, ends a track, and a face matching no track starts one;
- a track's score is the mean of the fake logits of its most suspicious half of frames (at least one),
  calibrated and thresholded like an image's face;
- the video's verdict is its most suspicious track's, among tracks seen in at least ``MIN_TRACK_FRAMES``
  samples (a face found in a single sample is often a false detection) or, where none is, among all;
- no face in any sampled frame: ``No face``, no verdict.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ..labels import LABEL_NO_FACE
from .faces import FaceBox
from .preprocessing import FaceCrop, PreparedImage

# Container -> (extension, MIME type). Recognised from the bytes, then probed.
CONTAINERS = {
    "MP4": ("mp4", "video/mp4"),
    "MOV": ("mov", "video/quicktime"),
    "WEBM": ("webm", "video/webm"),
    "MKV": ("mkv", "video/x-matroska"),
}
QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
MAX_FRAME_RATE = 1000.0  # above it the stream's timing is not believable
TRACK_GAP_SECONDS = 1.5  # a face unseen longer than this starts a new track when it comes back
MIN_TRACK_FRAMES = 2
SCENE_CUT = 48.0  # mean absolute difference (0-255) of 32x32 grey copies of consecutive samples
STILL_SIDE = 640  # the stills shown for a track, re-encoded
KEEP_STILLS = 3  # most suspicious frames kept per track


class VideoError(ValueError):
    """The bytes are not a video this platform can analyse; ``code`` says why, the message says it to people."""

    def __init__(self, message: str, code: str = "damaged"):
        super().__init__(message)
        self.code = code


DAMAGED = (
    "The video is truncated or damaged: part of the file is missing or corrupt. "
    "Try the original file, or export it again and upload that copy."
)


# ISO-BMFF major brands of still images (HEIF, HEIC and AVIF, and their image sequences): the same container as
# MP4, but a photo, never a video.
IMAGE_BRANDS = {b"mif1", b"mif2", b"msf1", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"avif", b"avis"}


def container_of(head: bytes) -> str | None:
    """The container a file's first bytes announce, or None: ISO media (MP4, QuickTime) or EBML (WebM, Matroska).
    An ISO-BMFF file whose major brand is a still image's (HEIC, AVIF) is no video: None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        if head[8:12] in IMAGE_BRANDS:
            return None
        return "MOV" if head[8:12] == b"qt  " else "MP4"
    if len(head) >= 8 and head[4:8] in QUICKTIME_ATOMS:
        return "MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WEBM" if b"webm" in head[:64] else "MKV"
    return None


@dataclass
class VideoInfo:
    container: str
    width: int  # upright, after the rotation the file asks for
    height: int
    duration: float  # seconds
    frame_rate: float
    rotation: int  # degrees the frames are turned to show them upright
    codec: str
    first_frame: Image.Image = field(repr=False)  # upright RGB, for the preview


def _open(source):
    import av

    try:
        return av.open(source, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoError(DAMAGED) from exc


def _upright(frame, rotation: int) -> Image.Image:
    image = frame.to_image()
    if rotation % 360:
        image = image.rotate(rotation, expand=True)  # counter-clockwise, as the display matrix means
    return image.convert("RGB")


def _rotation(frame) -> int:
    """Degrees to turn the frame counter-clockwise to show it upright (the display matrix's, a multiple of 90)."""
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
        if seconds > 0:
            return seconds
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    return None


def probe(source, max_seconds: float, max_pixels: int, container_name: str) -> VideoInfo:
    """Open the clip and check what analysing it needs: a video stream the decoder reads, a size, a believable
    frame rate and duration within the limits, and frames from its start to its end (a truncated tail fails
    here). ``source``: a path or a seekable binary file. Raises VideoError with a message for people."""
    import av

    with _open(source) as container:
        streams = container.streams.video
        if not streams:
            raise VideoError("The file has no video stream.", "no_video")
        stream = streams[0]
        codec = stream.codec_context.name if stream.codec_context else ""
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoError(DAMAGED)
        if width * height > max_pixels:
            raise VideoError(
                f"The video's frames are {width}x{height} pixels, more than the {max_pixels:,} allowed.",
                "too_many_pixels",
            )
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        if rate > MAX_FRAME_RATE:
            raise VideoError(f"The video claims {rate:g} frames a second, which no camera records.", "frame_rate")
        duration = _duration(container, stream)
        if duration is not None and duration > max_seconds:
            raise _too_long(duration, max_seconds)
        stream.thread_type = "AUTO"
        try:
            first = next(container.decode(stream), None)
        except (av.error.FFmpegError, ValueError) as exc:
            raise VideoError(DAMAGED) from exc
        if first is None:
            raise VideoError("The video has no frames.", "no_frames")
        rotation = _rotation(first)
        first_image = _upright(first, rotation)
        start = float(first.time or 0.0)
    last = _last_frame_time(source, duration, start)
    if duration is None or duration <= 0:
        duration = max(last - start, 0.0) + (1.0 / rate if rate > 0 else 0.0)
    elif duration > 1.0 and last < start + 0.6 * duration:
        raise VideoError(DAMAGED)  # frames stop long before the stated end: the file was cut short
    if duration > max_seconds:
        raise _too_long(duration, max_seconds)
    return VideoInfo(
        container=container_name,
        width=first_image.width,
        height=first_image.height,
        duration=round(duration, 3),
        frame_rate=round(rate, 3),
        rotation=rotation,
        codec=codec,
        first_frame=first_image,
    )


def clock(seconds: float) -> str:
    """75.4 -> "1:15"."""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _too_long(duration: float, max_seconds: float) -> VideoError:
    return VideoError(
        f"The video lasts {clock(duration)}; videos up to {clock(max_seconds)} (minutes:seconds) are analysed.",
        "too_long",
    )


def _last_frame_time(source, duration: float | None, start: float) -> float:
    """The time of the last frame that decodes near the stated end (seeking there), or of the last frame."""
    import av

    if hasattr(source, "seek"):
        source.seek(0)
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if duration:
            target = start + max(duration - 2.0, 0.0)
            try:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            except av.error.FFmpegError as exc:
                raise VideoError(DAMAGED) from exc
        last = start
        try:
            for frame in container.decode(stream):
                if frame.time is not None:
                    last = max(last, float(frame.time))
        except av.error.FFmpegError:
            pass  # a damaged tail: what decoded before it counts
        return last


def sample_times(duration: float, fps: float, max_frames: int) -> list[float]:
    """When to look: ``fps`` times a second, evenly over the clip, at most ``max_frames`` times, at least once."""
    n = max(1, min(max_frames, math.floor(duration * fps)))
    return [duration * (k + 0.5) / n for k in range(n)]


TAIL_HOLD = 1.0  # seconds the last decoded frame stands for the samples after it
SEEK_AFTER = 2.0  # seconds: a longer gap to the next sample is crossed by seeking, not by decoding every frame


def frames_at(source, times: list[float], rotation: int) -> Iterator[tuple[float, Image.Image]]:
    """The upright frame shown at each of ``times`` (seconds from the first frame), streamed in order.

    Frames are decoded in order and the one on screen at each time is taken; where the next time is far ahead
    the decoder seeks to the keyframe before it instead of decoding everything between.
    """
    import av

    if hasattr(source, "seek"):
        source.seek(0)
    with _open(source) as container:
        if not container.streams.video:
            raise VideoError("The file has no video stream.", "no_video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start, k, previous, sought = None, 0, None, -1
        decoder = container.decode(stream)
        while k < len(times):
            try:
                frame = next(decoder, None)
            except av.error.FFmpegError:
                frame = None  # the rest cannot be decoded: the last good frame stands for the remaining times
            if frame is None:
                break
            t = float(frame.time or 0.0)
            start = t if start is None else start
            t -= start
            while k < len(times) and t > times[k] and previous is not None:
                yield times[k], _upright(previous, rotation)  # the frame shown until this one replaced it
                k += 1
            if k < len(times) and t >= times[k]:
                yield times[k], _upright(frame, rotation)
                k += 1
            previous = frame
            if k < len(times) and times[k] - t > SEEK_AFTER and sought < k:
                # Once per sample: the keyframe before it may be far behind, and then it is decoded through.
                container.seek(int((times[k] + start) / stream.time_base), stream=stream, backward=True)
                decoder, previous, sought = container.decode(stream), None, k
        if previous is not None:
            # Past the last frame (a short final frame, a variable rate) it stays on screen; but not for long: a
            # tail that does not decode is not stood in for by one frame repeated (fewer samples are analysed).
            last = float(previous.time or 0.0) - (start or 0.0)
            while k < len(times) and times[k] - last <= TAIL_HOLD:
                yield times[k], _upright(previous, rotation)
                k += 1


def _iou(a: FaceBox, b: FaceBox) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Live:
    id: int
    boxes: list[tuple[float, FaceBox]]  # (seconds, box), the last two used for the motion

    def predicted(self, t: float) -> tuple[float, float]:
        (t1, b1) = self.boxes[-1]
        cx, cy = b1.x + b1.w / 2, b1.y + b1.h / 2
        if len(self.boxes) >= 2:
            (t0, b0) = self.boxes[-2]
            if t1 > t0:
                vx = (cx - (b0.x + b0.w / 2)) / (t1 - t0)
                vy = (cy - (b0.y + b0.h / 2)) / (t1 - t0)
                return cx + vx * (t - t1), cy + vy * (t - t1)
        return cx, cy


class Tracker:
    """Links the faces of consecutive samples into tracks: where a track's motion predicts and alike in size.

    Each face's cost against a live track is its centre's distance from the predicted centre, in face sizes,
    plus how much the sizes differ (a log ratio); pairs are taken cheapest first, each face and track once,
    up to ``max_cost``. A cut or an absence longer than ``gap`` seconds ends a track.
    """

    def __init__(self, gap: float = TRACK_GAP_SECONDS, max_cost: float = 1.5):
        self.gap, self.max_cost = gap, max_cost
        self._live: list[_Live] = []
        self._next = 1

    def update(self, t: float, boxes: list[FaceBox], cut: bool = False) -> list[int]:
        """The track id of each box seen at ``t`` seconds."""
        if cut:
            self._live = []
        self._live = [tr for tr in self._live if t - tr.boxes[-1][0] <= self.gap]
        pairs = []
        for i, box in enumerate(boxes):
            cx, cy, size = box.x + box.w / 2, box.y + box.h / 2, math.sqrt(max(box.w * box.h, 1.0))
            for j, track in enumerate(self._live):
                px, py = track.predicted(t)
                last = track.boxes[-1][1]
                cost = math.hypot(cx - px, cy - py) / size + abs(math.log(size / math.sqrt(max(last.w * last.h, 1.0))))
                if cost <= self.max_cost or _iou(box, last) >= 0.5:
                    pairs.append((cost, i, j))
        ids: list[int | None] = [None] * len(boxes)
        taken = set()
        for _, i, j in sorted(pairs):
            if ids[i] is None and j not in taken:
                ids[i] = self._live[j].id
                self._live[j].boxes = [*self._live[j].boxes[-1:], (t, boxes[i])]
                taken.add(j)
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self._next
                self._live.append(_Live(self._next, [(t, box)]))
                self._next += 1
        return ids  # type: ignore[return-value]


def is_cut(previous: np.ndarray | None, current: np.ndarray) -> bool:
    return previous is not None and float(np.abs(current - previous).mean()) > SCENE_CUT


def small_grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((32, 32), Image.BILINEAR), dtype=np.float32)


def distinct(crops: list[FaceCrop]) -> list[FaceCrop]:
    """The faces of one frame without the boxes drawn around another, smaller face: in footage a larger face in
    front would hide the smaller one, so such a box is the face finder seeing the same face twice (over the head
    and shoulders), and as a track of its own it would flicker in and out beside the face's."""

    def around(outer: FaceBox, inner: FaceBox) -> bool:
        cx, cy = inner.x + inner.w / 2, inner.y + inner.h / 2
        inside = outer.x <= cx <= outer.x + outer.w and outer.y <= cy <= outer.y + outer.h
        return inside and inner.w * inner.h * 2 <= outer.w * outer.h

    return [c for c in crops if not any(around(c.box, o.box) for o in crops if o is not c)]


def track_logit(logits: list[float]) -> float:
    """A track's logit: the mean of its most suspicious half of frames' (at least one)."""
    top = sorted(logits, reverse=True)[: max(1, len(logits) // 2)]
    return float(np.mean(top))


@dataclass
class TrackFrame:
    seconds: float
    box: list[int]
    logit: float
    fake_probability: float


@dataclass
class Still:
    """One of a track's most suspicious frames, kept to be shown: the frame (box drawn) and the face crop."""

    seconds: float
    logit: float
    jpeg: bytes
    crop: np.ndarray  # the classifier's input, for its heatmap
    heatmap_png: bytes = b""


@dataclass
class TrackResult:
    id: int
    frames: list[TrackFrame] = field(default_factory=list)
    stills: list[Still] = field(default_factory=list)
    fake_probability: float = 0.0
    label: str = ""

    @property
    def first_seconds(self) -> float:
        return self.frames[0].seconds

    @property
    def last_seconds(self) -> float:
        return self.frames[-1].seconds


@dataclass
class VideoVerdict:
    label: str
    fake_probability: float | None  # None where no face was seen: no verdict
    threshold: float
    real_below: float | None
    model_version: str
    frames_sampled: int
    tracks: list[TrackResult]
    deciding_track: int | None
    decode_ms: int
    analysis_ms: int


def _still(image: Image.Image, box: list[int]) -> bytes:
    scale = min(1.0, STILL_SIDE / max(image.size))
    shown = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    x, y, w, h = (v * scale for v in box)
    ImageDraw.Draw(shown).rectangle([x, y, x + w, y + h], outline=(255, 176, 0), width=3)
    buf = io.BytesIO()
    shown.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _keep(track: TrackResult, still: Still) -> None:
    track.stills.append(still)
    track.stills.sort(key=lambda s: s.logit, reverse=True)
    del track.stills[KEEP_STILLS:]


def analyse(
    detector,
    source,
    info: VideoInfo,
    fps: float,
    max_frames: int,
    on_progress: Callable[[int, int], None] | None = None,
    batch_frames: int = 8,
    heatmaps: bool = True,
) -> VideoVerdict:
    """The video's verdict by ``detector`` (a ``predictor.Detector``): sample, find faces, track, score.

    ``on_progress(done, planned)`` is called after each batch of frames is scored.
    """
    times = sample_times(info.duration, fps, max_frames)
    tracker, tracks = Tracker(), {}
    decode_s, started = 0.0, time.perf_counter()
    pending: list[tuple[float, Image.Image, list[FaceCrop], list[int]]] = []
    previous, done = None, 0

    def score(batch):
        crops = [c for _, _, cs, _ in batch for c in cs]
        logits = detector.face_logits(detector.views(crops)) if crops else np.zeros(0)
        k = 0
        for t, image, cs, ids in batch:
            for crop, tid in zip(cs, ids, strict=True):
                z = float(logits[k])
                k += 1
                track = tracks.setdefault(tid, TrackResult(tid))
                box = crop.box.as_list()
                track.frames.append(TrackFrame(round(t, 3), box, z, detector.meta.calibration.probability(z)))
                if len(track.stills) < KEEP_STILLS or z > track.stills[-1].logit:
                    _keep(track, Still(round(t, 3), z, _still(image, box), crop.pixels))

    clock = time.perf_counter()
    for t, image in frames_at(source, times, info.rotation):
        decode_s += time.perf_counter() - clock
        grey = small_grey(image)
        prepared = detector.prepare(image)
        faces = distinct([c for c in prepared.crops if c.box is not None])
        ids = tracker.update(t, [c.box for c in faces], cut=is_cut(previous, grey))
        previous = grey
        pending.append((t, image, faces, ids))
        if len(pending) >= batch_frames:
            score(pending)
            done += len(pending)
            pending = []
            if on_progress:
                on_progress(done, len(times))
        clock = time.perf_counter()
    decode_s += time.perf_counter() - clock
    if pending:
        score(pending)
        done += len(pending)
        if on_progress:
            on_progress(done, len(times))
    if done == 0:
        raise VideoError(DAMAGED)

    results = sorted(tracks.values(), key=lambda tr: tr.first_seconds)
    thresholds = detector.meta.thresholds
    for number, track in enumerate(results, start=1):
        track.id = number
        track.fake_probability = detector.meta.calibration.probability(track_logit([f.logit for f in track.frames]))
        track.label = thresholds.label(track.fake_probability)
    if heatmaps:
        _heatmaps(detector, results)
    eligible = [tr for tr in results if len(tr.frames) >= MIN_TRACK_FRAMES] or results
    deciding = max(eligible, key=lambda tr: tr.fake_probability) if eligible else None
    return VideoVerdict(
        label=deciding.label if deciding else LABEL_NO_FACE,
        fake_probability=deciding.fake_probability if deciding else None,
        threshold=thresholds.decision,
        real_below=thresholds.real_below,
        model_version=detector.version,
        frames_sampled=done,
        tracks=results,
        deciding_track=deciding.id if deciding else None,
        decode_ms=round(decode_s * 1000),
        analysis_ms=round((time.perf_counter() - started) * 1000),
    )


def _heatmaps(detector, tracks: list[TrackResult]) -> None:
    """Each kept still's heatmap, all in one call (the same maps as an image's faces get)."""
    from .explain import overlay_png

    stills = [s for tr in tracks for s in tr.stills]
    if not stills:
        return
    crops = [FaceCrop(FaceBox(0, 0, 1, 1, 1.0), s.crop) for s in stills]
    side = stills[0].crop.shape[0]
    maps = detector.heatmaps(PreparedImage(side, side, crops))
    for still, heat in zip(stills, maps, strict=True):
        still.heatmap_png = overlay_png(still.crop, heat)
