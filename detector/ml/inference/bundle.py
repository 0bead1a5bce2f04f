"""The model bundle: Keras weights plus the metadata that says what they mean.

A bundle is a folder with ``metadata.json`` and the weights file it names.  The
metadata fixes the label mapping (the model outputs one logit: the evidence that
a face is fake), the input size, the preprocessing it expects, the calibration
and thresholds chosen on the validation split, and the sha256 of the weights,
which the loader verifies before it trusts them.  ``engines`` lists exported
fast forms of the same network (see :mod:`.export`), each with its file, its
checksum and how closely it was checked against the Keras model.
``test_time_flip`` says that a face's logit is the mean of the network's logits
for the crop and for its mirror image (the calibration and thresholds were
fitted on that mean, so a bundle is only right scored the way it says).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..labels import LABEL_FAKE, LABEL_REAL
from .calibration import Calibration, Thresholds
from .preprocessing import CROP_SCALES, PREPROCESSING_VERSION, RESIZED, CropSpec

BUNDLE_FORMAT = 1
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.keras"
OUTPUT_MEANING = "logit of the probability that the face is fake (1 = Deepfake, 0 = Real)"


class BundleError(Exception):
    """A model bundle that is missing, damaged or not usable by this code."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class BundleMetadata:
    name: str
    version: str
    input_size: int
    face_margin: float
    calibration: Calibration
    thresholds: Thresholds
    weights_sha256: str = ""
    weights_file: str = WEIGHTS_FILE
    bundle_format: int = BUNDLE_FORMAT
    preprocessing_version: int = PREPROCESSING_VERSION
    labels: dict = field(default_factory=lambda: {"output": OUTPUT_MEANING, "0": LABEL_REAL, "1": LABEL_FAKE})
    training: dict = field(default_factory=dict)
    engines: dict = field(default_factory=dict)  # name -> {"file", "sha256", "check": {...}, ...}
    test_time_flip: bool = False  # a face's logit: the mean over the crop and its mirror image
    # An ensemble: no network of its own, its members' face logits combined (see :mod:`.ensemble`).
    members: list = field(default_factory=list)  # [{"bundle": folder beside it, "version", "title", "weight"}]
    stacking: dict = field(default_factory=dict)  # {"rule", "intercept", ...}
    # "resized": the face's square resized to input_size; "native": its centre at full resolution (.preprocessing)
    crop_scale: str = RESIZED

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    @property
    def crop_spec(self) -> CropSpec:
        return CropSpec(self.input_size, self.face_margin, self.crop_scale)

    def to_json(self) -> str:
        d = asdict(self)
        for key in ("members", "stacking"):  # a single network's metadata stays as it was
            if not d[key]:
                del d[key]
        if d["crop_scale"] == RESIZED:  # so does a resized crop's, as every bundle before native crops had
            del d["crop_scale"]
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> BundleMetadata:
        d = dict(d)
        d["calibration"] = Calibration(**d["calibration"])
        d["thresholds"] = Thresholds(**d["thresholds"])
        return cls(**d)


def read_metadata(path: Path) -> BundleMetadata:
    """Read and check a bundle's metadata and weights checksum, without loading TensorFlow."""
    path = Path(path)
    meta_path = path / METADATA_FILE
    if not path.is_dir():
        raise BundleError(f"model bundle not found: {path} is not a folder")
    if not meta_path.is_file():
        raise BundleError(f"model bundle {path} has no {METADATA_FILE}")
    try:
        meta = BundleMetadata.from_dict(json.loads(meta_path.read_text()))
    except (ValueError, TypeError, KeyError) as exc:
        raise BundleError(f"model bundle {path}: unreadable {METADATA_FILE} ({exc})") from exc
    if meta.bundle_format != BUNDLE_FORMAT:
        raise BundleError(
            f"model bundle {path} has format {meta.bundle_format}; this code reads format {BUNDLE_FORMAT}"
        )
    if meta.preprocessing_version != PREPROCESSING_VERSION:
        raise BundleError(
            f"model bundle {path} was trained with preprocessing v{meta.preprocessing_version}; "
            f"this code implements v{PREPROCESSING_VERSION}"
        )
    if meta.labels.get("1") != LABEL_FAKE or meta.labels.get("0") != LABEL_REAL:
        raise BundleError(f"model bundle {path} has an unknown label mapping {meta.labels}")
    if meta.crop_scale not in CROP_SCALES:
        raise BundleError(f"model bundle {path} asks for face crops at an unknown scale {meta.crop_scale!r}")
    if meta.is_ensemble:
        _verify_members(path, meta)
        return meta
    _verify(path, meta.weights_file, meta.weights_sha256, "weights")
    for name, engine in meta.engines.items():
        if not isinstance(engine, dict) or not engine.get("file") or not engine.get("sha256"):
            raise BundleError(f"model bundle {path}: engine {name!r} lacks its file or checksum")
        _verify(path, engine["file"], engine["sha256"], f"{name} engine")
        if engine.get("maps"):  # a float export beside an integer one, for the heatmaps alone
            _verify(path, engine["maps"]["file"], engine["maps"]["sha256"], f"{name} heatmap engine")
    return meta


def member_path(path: Path, member: dict) -> Path:
    """An ensemble's member bundle: a folder beside the ensemble's own (both in ml_models/)."""
    return Path(path).parent / member["bundle"]


def _verify_members(path: Path, meta: BundleMetadata) -> None:
    """Each member is there, intact, and the version the ensemble was fitted on (each crops faces its own way)."""
    for member in meta.members:
        try:
            found = read_metadata(member_path(path, member))
        except BundleError as exc:
            raise BundleError(f"ensemble {path}: member {member.get('bundle')!r}: {exc}") from exc
        if found.is_ensemble:
            raise BundleError(f"ensemble {path}: member {member['bundle']!r} is an ensemble itself")
        if found.version != member.get("version"):
            raise BundleError(
                f"ensemble {path} was fitted on {member['bundle']} {member.get('version')}, "
                f"but that folder holds {found.version}"
            )


def _verify(path: Path, name: str, expected: str, what: str) -> None:
    file = path / name
    if not file.is_file():
        raise BundleError(f"model bundle {path} lacks its {what} file {name}")
    actual = sha256_file(file)
    if actual != expected:
        raise BundleError(
            f"model bundle {path}: {what} checksum mismatch (metadata says {expected[:12]}…, "
            f"file is {actual[:12]}…); the file is damaged or was replaced"
        )


def load_keras_model(path: Path, meta: BundleMetadata):
    """Load the verified weights and check the network's shape against the metadata."""
    import keras

    if meta.is_ensemble:
        raise BundleError(f"model bundle {path} is an ensemble: it has no network of its own, its members have")
    try:
        model = keras.saving.load_model(Path(path) / meta.weights_file, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise BundleError(f"model bundle {path}: cannot load {meta.weights_file} ({exc})") from exc
    expected_in = (None, meta.input_size, meta.input_size, 3)
    if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != (None, 1):
        raise BundleError(
            f"model bundle {path}: network takes {model.input_shape} and gives {model.output_shape}; "
            f"metadata expects {expected_in} -> (None, 1)"
        )
    return model


def write_bundle(path: Path, model, meta: BundleMetadata) -> BundleMetadata:
    """Save weights and metadata (with the weights' checksum) into ``path``.

    Exported engines of earlier weights in the folder no longer match, so they go.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    old = path / METADATA_FILE
    if old.is_file():
        for engine in json.loads(old.read_text()).get("engines", {}).values():
            if engine.get("file") and engine["file"] != meta.weights_file:
                (path / engine["file"]).unlink(missing_ok=True)
    meta.engines = {}
    weights = path / meta.weights_file
    model.save(weights)
    meta.weights_sha256 = sha256_file(weights)
    (path / METADATA_FILE).write_text(meta.to_json())
    return meta
