"""Ways to run the classifier: the Keras model, or its exported LiteRT (TFLite) form.

Both take uint8 face crops ``(n, size, size, 3)`` and return the raw fake logit
of each.  The LiteRT form is what serving uses when the bundle carries one: it
needs no TensorFlow at all and answers one 224 px face in about 5 ms on two
cores, against about 19 ms for a ``tf.function`` call of the Keras model
(``make bench`` measures both).  The Keras model stays the reference, for
training and for the heatmaps, and the export is checked against it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

KERAS, LITERT, CLIP = "keras", "litert", "clip"
ENGINES = (KERAS, LITERT, CLIP)  # CLIP: a linear head on CLIP image features (.clip.ClipEngine), no network here
# Largest difference from Grad-CAM on the Keras model (maps in [0, 1]) at which an export's own activation maps
# are drawn; past it (float16 weights can move a faint map's peak) the heatmaps come from the Keras model.
HEATMAP_TOLERANCE = 0.02


def export_draws_maps(record: dict) -> bool:
    """Whether an exported engine's activation maps were checked to stand in for Grad-CAM."""
    return record.get("check", {}).get("max_heatmap_difference", float("inf")) < HEATMAP_TOLERANCE


class KerasEngine:
    """The Keras model behind a ``tf.function`` with a fixed input signature (traced once)."""

    name = KERAS
    has_maps = False  # heatmaps come from Grad-CAM on the model itself

    def __init__(self, model, input_size: int):
        import tensorflow as tf

        self._call = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.float32)],
        )

    def logits(self, crops: np.ndarray) -> np.ndarray:
        return self._call(crops.astype(np.float32)).numpy().ravel()


class LiteRTEngine:
    """The exported flatbuffer run by the LiteRT interpreter (XNNPACK on CPU); one call at a time."""

    name = LITERT

    def __init__(self, path: Path | str, num_threads: int | None = None, maps: bool = True):
        """``maps``: draw heatmaps from the export's second output (False: Grad-CAM on the Keras model instead)."""
        from .runtime import tflite_interpreter

        self._interpreter = tflite_interpreter(str(path), num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {len(d["shape"]): d["index"] for d in self._interpreter.get_output_details()}
        self._output = outputs[2]  # (n, 1): the fake logit
        self._cam = outputs.get(3) if maps else None  # (n, h, w): the class activation map, where it serves
        self._batch = None
        self._lock = threading.Lock()  # an interpreter is not safe to share between threads

    @property
    def has_maps(self) -> bool:
        return self._cam is not None

    def logits(self, crops: np.ndarray) -> np.ndarray:
        return self._run(crops)[0]

    def activation_maps(self, crops: np.ndarray) -> np.ndarray:
        """The raw (n, h, w) class activation maps (see :mod:`.explain`)."""
        return self._run(crops)[1]

    def _run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(crops, dtype=np.float32)
        with self._lock:
            if self._batch != len(x):  # re-planning costs little, but only when the batch size changes
                self._interpreter.resize_tensor_input(self._input, x.shape, strict=True)
                self._interpreter.allocate_tensors()
                self._batch = len(x)
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            logits = self._interpreter.get_tensor(self._output).ravel().copy()
            maps = None if self._cam is None else self._interpreter.get_tensor(self._cam).copy()
            return logits, maps
