"""Shared fixtures: temporary media, generated images, a stub detector and a tiny real bundle."""

from __future__ import annotations

import functools
import io
import json
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from detector.ml.inference.bundle import Thresholds

ROOT = Path(__file__).resolve().parent.parent
SHARED_FACES = ROOT.parent / "shared" / "datasets" / "faces"
SHIPPED_BUNDLE = ROOT / "ml_models" / "ensemble-v2"  # the default
SHIPPED_BUNDLES = sorted(p.parent for p in (ROOT / "ml_models").glob("*/metadata.json"))
# Networks trained with a kind of data left out, for the out-of-domain folds only: measured, never served.
FOLD_BUNDLES = sorted(p.parent for p in (ROOT / "ml_models" / "folds").glob("*/metadata.json"))
# The bundles that are networks of their own and carry an exported LiteRT form beside their Keras weights.
SHIPPED_EXPORTS = [
    p for p in SHIPPED_BUNDLES if "litert" in json.loads((p / "metadata.json").read_text()).get("engines", {})
]

needs_shared = pytest.mark.skipif(
    not (SHARED_FACES / "manifest.csv").is_file(),
    reason=f"needs the team dataset at {SHARED_FACES} (absent in a newcomer's clone)",
)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """On SQLite, the test database is a file, not Django's shared in-memory one.

    With an in-memory database every thread of the live server shares the test's one connection, and two
    requests at once (a page's two charts) can deadlock inside the sqlite3 module: one thread holds the GIL
    waiting for SQLite's connection mutex, the other holds the mutex waiting for the GIL, and nothing, not even
    a timeout, runs again. A file gives each thread its own connection, as in production.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")


RUN_COUNTS = pytest.StashKey[dict]()


@pytest.fixture
def run_counts(request):
    """``run_counts(title)``: a Counter that tests add to; the end of the run prints each (see below)."""
    counters = request.config.stash.setdefault(RUN_COUNTS, {})
    return lambda title: counters.setdefault(title, Counter())


def pytest_terminal_summary(terminalreporter, config):
    """What the generated-input tests tried, in the run's closing lines, whatever order the tests ran in."""
    for title, counts in config.stash.get(RUN_COUNTS, {}).items():
        terminalreporter.write_line(f"{title}: " + ", ".join(f"{key} {n}" for key, n in sorted(counts.items())))


@pytest.fixture(autouse=True)
def production_address_checks(settings):
    """Links and callbacks are checked as in production, whatever a developer's ``.env`` says.

    ``make install`` writes ``.env`` from ``.env.example``, which lets ``make run`` reach loopback and private
    addresses; the tests that need that turn it on themselves.
    """
    settings.DETECTOR_ALLOW_PRIVATE_URLS = False


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return settings.MEDIA_ROOT


def image_bytes(fmt="JPEG", size=(320, 240), color=(180, 120, 90), **save_kwargs) -> bytes:
    """An image generated in memory, with a gradient so encoders have something to encode."""
    im = Image.new("RGB", size, color)
    for x in range(0, size[0], 8):
        im.paste((x % 256, 80, 160), (x, 0, x + 4, size[1] // 3))
    buf = io.BytesIO()
    im.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


@functools.cache
def portrait_bytes() -> bytes:
    """A real photograph with one face the face finder finds (scikit-image's astronaut), as JPEG."""
    from skimage import data as skimage_data

    buf = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def jpeg_bytes():
    return image_bytes("JPEG")


@dataclass
class StubMeta:
    version: str = "stub-1"
    thresholds: Thresholds = field(default_factory=lambda: Thresholds.below(0.5, 0.4))
    training: dict = field(default_factory=lambda: {"train_images": 10})


class StubDetector:
    """Stands in for the model in view tests: fast, deterministic, records its calls."""

    def __init__(self, fake_probability=0.9, error: Exception | None = None, face_found: bool = True):
        self.meta = StubMeta()
        self.version = self.meta.version
        self.identity = {"name": "stub", "version": self.version, "title": "Stub model"}
        self.fake_probability = fake_probability
        self.error = error
        self.face_found = face_found
        self.calls = 0
        self.during = None  # called while judging: what happens elsewhere meanwhile (a deletion, say)

    def judge(self, image):
        from detector.ml.inference.predictor import FaceResult, Verdict, confidence_for
        from detector.ml.labels import LABEL_NO_FACE

        self.calls += 1
        if self.during:
            self.during()
        if self.error:
            raise self.error
        p = self.fake_probability
        label = self.meta.thresholds.label(p) if self.face_found else LABEL_NO_FACE
        box = [image.width // 4, image.height // 4, image.width // 2, image.height // 2] if self.face_found else None
        return Verdict(
            label=label,
            fake_probability=p,
            confidence=confidence_for(label, p),
            threshold=0.5,
            real_below=self.meta.thresholds.real_below,
            model_version=self.version,
            face_found=self.face_found,
            width=image.width,
            height=image.height,
            faces=[
                FaceResult(
                    box=box,
                    fake_probability=p,
                    label=label,
                    models=[{**self.identity, "fake_probability": p, "label": label}],
                )
            ],
            models=[
                {
                    **self.identity,
                    "fake_probability": p if self.face_found else None,
                    "label": label,
                    "face": 1 if self.face_found else None,
                }
            ],
        )


@contextmanager
def installed(detector):
    """``detector`` as the process's model within the block, the one before it again afterwards."""
    from detector.services import inference

    previous = inference._detector, inference._pinned
    inference.set_detector(detector)
    try:
        yield detector
    finally:
        inference.set_detector(previous[0])
        inference._pinned = previous[1]


@pytest.fixture
def stub_detector():
    with installed(StubDetector()) as stub:
        yield stub


def build_tiny_bundle(
    path: Path,
    input_size: int = 32,
    version: str = "tiny-1",
    kernel: tuple = (0.05, 0.0, -0.05),
    crop_scale: str = "resized",
) -> Path:
    """A real Keras model saved as a bundle; its logit is 0.05 * (mean red - mean blue) (``kernel``: per channel).

    So a red image is 'fake' and a blue one 'real', which pins the label mapping. ``crop_scale``: how it asks
    for its face crops (``native``: unresampled, as the trace model does).
    """
    import keras
    import numpy as np

    from detector.ml.inference.bundle import BundleMetadata, Calibration, write_bundle

    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(inputs)
    outputs = keras.layers.Dense(1, name="fake_logit")(x)
    model = keras.Model(inputs, outputs)
    weights = np.array(kernel, np.float32).reshape(3, 1)
    model.get_layer("fake_logit").set_weights([weights, np.zeros(1, np.float32)])
    meta = BundleMetadata(
        name=path.name,
        version=version,
        input_size=input_size,
        face_margin=0.2,
        crop_scale=crop_scale,
        calibration=Calibration(1.0, 0.0),
        thresholds=Thresholds.below(0.5, 0.4),
        training={"train_images": 0, "dataset": "generated in tests"},
    )
    write_bundle(path, model, meta)
    return path


@pytest.fixture(scope="session")
def shipped_detector():
    """The bundle in ml_models/, loaded and warmed up once per test run."""
    from detector.ml.inference.predictor import Detector

    detector = Detector(SHIPPED_BUNDLE)
    detector.warm_up()
    return detector


@pytest.fixture
def shipped(shipped_detector, settings):
    """The shipped model installed as the process's detector."""
    settings.DETECTOR_MODEL = SHIPPED_BUNDLE
    with installed(shipped_detector):
        yield shipped_detector


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    return build_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture
def tiny_detector(tiny_bundle, settings):
    """The real serving code on the tiny bundle, installed as the process's detector."""
    from detector.ml.inference.predictor import Detector

    settings.DETECTOR_MODEL = tiny_bundle
    with installed(Detector(tiny_bundle)) as detector:
        yield detector


@pytest.fixture(autouse=True)
def fresh_cache():
    """Rate-limit counters and lockouts live in the cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
