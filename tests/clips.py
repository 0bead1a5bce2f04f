"""Video clips generated for the tests with PyAV (frames drawn with Pillow), and a detector for them.

In a clip a "face" is a saturated square: red ones are fakes, blue ones real. ``SquareDetector`` finds them
and scores them by their colour, so a test knows what every track must score.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from detector.ml.inference.bundle import Calibration, Thresholds
from detector.ml.inference.faces import FaceBox
from detector.ml.inference.preprocessing import FaceCrop, PreparedImage

RED, BLUE, GREY = (230, 20, 20), (20, 20, 230), (128, 128, 128)


@dataclass
class Square:
    colour: tuple
    start: tuple[float, float]  # top-left corner at t = 0, in pixels
    velocity: tuple[float, float] = (0.0, 0.0)  # pixels a second
    side: int = 40
    visible: tuple[float, float] = (0.0, math.inf)  # seconds on screen

    def at(self, t: float) -> tuple[int, int, int, int] | None:
        if not self.visible[0] <= t < self.visible[1]:
            return None
        x, y = self.start[0] + self.velocity[0] * t, self.start[1] + self.velocity[1] * t
        return round(x), round(y), round(x) + self.side, round(y) + self.side


@dataclass
class Scene:
    squares: list[Square] = field(default_factory=list)
    background: tuple = GREY
    until: float = math.inf  # the scene's last second (a cut to the next one)


def frame_at(scenes: list[Scene], t: float, size: tuple[int, int]) -> Image.Image:
    scene = next((s for s in scenes if t < s.until), scenes[-1])
    image = Image.new("RGB", size, scene.background)
    for square in scene.squares:
        box = square.at(t)
        if box:
            image.paste(square.colour, box)
    return image


def make_clip(
    scenes: list[Scene] | None = None,
    seconds: float = 3.0,
    fps: int = 10,
    size: tuple[int, int] = (192, 144),
    container: str = "mp4",
    codec: str = "libx264",
    rotation: int = 0,
    times: list[float] | None = None,
) -> bytes:
    """A clip of ``scenes`` (one grey scene by default); ``times``: each frame's own time (a variable rate)."""
    import av

    scenes = scenes or [Scene()]
    times = times if times is not None else [k / fps for k in range(max(1, round(seconds * fps)))]
    buf = io.BytesIO()
    with av.open(buf, "w", format={"mkv": "matroska", "mov": "mov"}.get(container, container)) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for t in times:
            frame = av.VideoFrame.from_image(frame_at(scenes, t, size))
            frame.pts = round(t * fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def audio_only_clip() -> bytes:
    """An MP4 with a second of silence and no video stream."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = np.zeros((1, 1024), np.float32)
        for k in range(16):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def squares_in(image: Image.Image) -> list[FaceBox]:
    """The saturated squares of a frame, as face boxes."""
    from scipy import ndimage

    a = np.asarray(image, dtype=np.int16)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    mask = ((r > 150) & (g < 100) & (b < 100)) | ((b > 150) & (r < 100) & (g < 100))
    labelled, _ = ndimage.label(mask)
    boxes = []
    for found in ndimage.find_objects(labelled):
        ys, xs = found
        w, h = xs.stop - xs.start, ys.stop - ys.start
        if min(w, h) >= 8:
            boxes.append(FaceBox(float(xs.start), float(ys.start), float(w), float(h), 1.0))
    return sorted(boxes, key=lambda f: f.w * f.h, reverse=True)


@dataclass
class SquareMeta:
    version: str = "squares-1"
    input_size: int = 16
    calibration: Calibration = field(default_factory=lambda: Calibration(1.0, 0.0))
    thresholds: Thresholds = field(default_factory=lambda: Thresholds.below(0.5, 0.4))
    training: dict = field(default_factory=lambda: {"train_images": 0, "dataset": "generated in tests"})


class SquareDetector:
    """The detector's interface for videos (prepare, face_logits, heatmaps): red squares fake, blue real.

    A face's logit is (mean red - mean blue) / 32 of its crop: about +6 for red, -6 for blue.
    """

    def __init__(self):
        self.meta = SquareMeta()
        self.version = self.meta.version
        self.prepared = 0

    def prepare(self, image, max_faces=None) -> PreparedImage:
        self.prepared += 1
        crops = []
        for box in squares_in(image):
            region = (box.x, box.y, box.x + box.w, box.y + box.h)
            pixels = np.asarray(image.resize((16, 16), Image.NEAREST, box=region), dtype=np.uint8)
            crops.append(FaceCrop(box, pixels))
        return PreparedImage(image.width, image.height, crops or [FaceCrop(None, np.zeros((16, 16, 3), np.uint8))])

    def views(self, crops: list[FaceCrop]) -> np.ndarray:  # one way to cut a face: a single batch
        return np.stack([c.pixels for c in crops])

    def face_logits(self, crops: np.ndarray) -> np.ndarray:
        c = crops.astype(np.float32)
        return (c[..., 0].mean(axis=(1, 2)) - c[..., 2].mean(axis=(1, 2))) / 32

    def heatmaps(self, prepared: PreparedImage) -> np.ndarray:
        return np.full((len(prepared.crops), 16, 16), 0.5, np.float32)

    def judge(self, image):  # an image upload in the same test: no face
        raise AssertionError("images are not judged by the square detector")


def portrait_clip(seconds: float = 4.0, fps: int = 10, size: tuple[int, int] = (480, 320)) -> bytes:
    """A clip with a real face the face finder finds (scikit-image's astronaut), drifting to the right."""
    import av

    from tests.conftest import portrait_bytes

    face = Image.open(io.BytesIO(portrait_bytes())).convert("RGB").resize((240, 240))
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        frames = max(1, round(seconds * fps))
        for k in range(frames):
            canvas = Image.new("RGB", size, (90, 96, 104))
            canvas.paste(face, (20 + round(150 * k / frames), 40))
            for packet in stream.encode(av.VideoFrame.from_image(canvas)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()
