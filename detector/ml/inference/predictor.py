"""Image -> verdict: the serving path shared by the web app, the CLI and evaluation."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..labels import LABEL_FAKE, LABEL_NO_FACE
from .bundle import BundleError, BundleMetadata, load_keras_model, member_path, read_metadata
from .engines import CLIP, ENGINES, KERAS, LITERT, KerasEngine, LiteRTEngine, export_draws_maps
from .explain import GradCam, upsample
from .preprocessing import CropSpec, DecodedImage, FaceCrop, FaceFinder, PreparedImage, prepare


class NoHeatmaps(BundleError):
    """This bundle draws no heatmaps (a head on CLIP features)."""


@dataclass(kw_only=True)
class FaceResult:
    box: list[int] | None  # [x, y, w, h] in pixels of the full upright picture; None: the centre square, no face
    fake_probability: float
    label: str = ""  # this face's own verdict by the bundle's thresholds (No face for the centre square)
    # Every model's score for this face, each calibrated and labelled by its own bundle: an ensemble's members
    # in its order, then the ensemble (``"ensemble": True``); a single model alone.
    # [{"name": bundle folder, "version", "title", "fake_probability", "label"}]
    models: list[dict] = field(default_factory=list)


@dataclass(kw_only=True)
class Verdict:
    """An image's verdict: its most suspicious face decides.

    Where no face was found the label is ``No face``: nothing was judged. ``fake_probability`` is
    then the centre square's score, kept for measurement and for reviewers, never a verdict.
    """

    label: str  # Real, Deepfake, Uncertain or No face (.labels)
    fake_probability: float
    confidence: float | None  # for Real and Deepfake only: the calibrated probability that the label is right
    threshold: float
    model_version: str
    face_found: bool
    width: int
    height: int
    faces: list[FaceResult] = field(default_factory=list)
    real_below: float | None = None  # Real below it, Deepfake from ``threshold``, Uncertain between
    # Every model's image-level score (its most suspicious face), as in FaceResult.models, with ``face``: the number
    # (from 1) of the face that decided for that model; where no face was found, no probability and ``No face``.
    models: list[dict] = field(default_factory=list)


def mirror_mean(run, crops: np.ndarray, mirror_back: bool = False) -> np.ndarray:
    """The mean of ``run`` over the crops and their mirror images, both views in one batch.

    ``mirror_back``: ``run`` gives maps (N, h, w), and the mirror images' maps are flipped back first.
    """
    both = run(np.concatenate([crops, crops[:, :, ::-1]]))
    mirrored = both[len(crops) :]
    return (both[: len(crops)] + (mirrored[:, :, ::-1] if mirror_back else mirrored)) / 2


def confidence_for(label: str, p: float) -> float | None:
    """Calibrated probability that a Deepfake verdict is right; None for Real (1 - p would claim a certainty the models
    do not have on fakes of kinds they never trained on), Uncertain and No face, which claim nothing."""
    if label == LABEL_FAKE:
        return p
    return None


class Detector:
    """A loaded bundle with its face finder; safe to share between threads.

    ``engine`` picks how the classifier runs: ``"auto"`` takes the bundle's
    exported LiteRT form where it has one (no TensorFlow needed to serve), else
    the Keras model.  The Keras model itself is loaded on first use only (for the
    heatmaps, or as the engine).

    An ensemble bundle has no network: its ``members`` (each a Detector) score
    the same faces, each cut as that member asks (:attr:`crop_specs`), and
    :meth:`combine` turns their logits into its own.
    """

    def __init__(self, bundle_path: Path | str, num_threads: int | None = None, engine: str = "auto"):
        self.path = Path(bundle_path)
        self.meta: BundleMetadata = read_metadata(self.path)
        self._model = None
        self._model_lock = threading.Lock()
        self._num_threads = num_threads
        self._finder = None  # made on first use: an ensemble's members never find faces themselves
        self._finder_lock = threading.Lock()  # the TFLite interpreters are not thread-safe
        self._explainer = None
        self._explainer_lock = threading.Lock()
        self._maps_engine = None  # an integer export's float twin, for the heatmaps alone (made on first use)
        self.members: list[Detector] = [
            Detector(member_path(self.path, m), num_threads, engine) for m in self.meta.members
        ]
        if self.members:
            for member, record in zip(self.members, self.meta.members, strict=True):
                if "test_time_flip" in record:  # how this ensemble has the member judge a face (its crop alone)
                    member.meta.test_time_flip = bool(record["test_time_flip"])
            self.engine = None
            return
        if engine not in ("auto", *ENGINES):
            raise BundleError(f"unknown engine {engine!r}; choose one of auto, {', '.join(ENGINES)}")
        if CLIP in self.meta.engines:  # a head on CLIP features has no other form (no network to run otherwise)
            from .clip import ClipEngine

            record = self.meta.engines[CLIP]
            self.engine = ClipEngine(self.path / record["file"], record["sha256"], num_threads)
            return
        if engine in ("auto", CLIP):
            engine = LITERT if LITERT in self.meta.engines else KERAS
        if engine == LITERT and LITERT not in self.meta.engines:
            raise BundleError(f"model bundle {self.path} has no exported {LITERT} engine (run export_detector)")
        if engine == LITERT:
            record = self.meta.engines[LITERT]
            self.engine = LiteRTEngine(self.path / record["file"], num_threads, maps=export_draws_maps(record))
        else:
            self.engine = KerasEngine(self.model, self.meta.input_size)

    @property
    def draws_heatmaps(self) -> bool:
        """Whether this bundle has maps to show: a network does (Grad-CAM, or its export's own), a head on CLIP
        features does not, an ensemble does where one of its members does."""
        if self.members:
            return any(m.draws_heatmaps for m in self.members)
        return self.engine.name != CLIP

    @property
    def model(self):
        """The Keras model (the reference network), loaded on first use."""
        if self.members:
            raise BundleError(f"model bundle {self.path} is an ensemble: it has no network of its own")
        if CLIP in self.meta.engines:
            raise BundleError(f"model bundle {self.path} is a head on CLIP features: it has no network of its own")
        with self._model_lock:
            if self._model is None:
                self._model = load_keras_model(self.path, self.meta)
            return self._model

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def spec(self) -> CropSpec:
        """How this bundle cuts a face (an ensemble: as its first member does)."""
        return self.meta.crop_spec

    @property
    def crop_specs(self) -> list[CropSpec]:
        """Every way the faces must be cut to score them: this bundle's, and its members' where they differ."""
        specs = [self.spec]
        for m in self.members:
            if m.spec not in specs:
                specs.append(m.spec)
        return specs

    def prepare(
        self, image: Image.Image | DecodedImage, max_faces: int | None = None, also: tuple[CropSpec, ...] = ()
    ) -> PreparedImage:
        """The image's faces, cut every way this bundle needs (and as ``also`` asks, for other models)."""
        with self._finder_lock:
            if self._finder is None:
                self._finder = FaceFinder(num_threads=self._num_threads)
            kwargs = {"max_faces": max_faces} if max_faces else {}
            spec, *more = self.crop_specs
            extra = tuple(dict.fromkeys(s for s in (*more, *also) if s != spec))
            return prepare(image, self._finder, spec.size, spec.margin, scale=spec.scale, also=extra, **kwargs)

    def views(self, crops: list[FaceCrop]) -> dict[CropSpec, np.ndarray]:
        """The faces as a batch for every way this bundle cuts them (what :meth:`face_logits` takes)."""
        return {spec: np.stack([c.view(spec) for c in crops]) for spec in self.crop_specs}

    def _own(self, crops) -> np.ndarray:
        return crops[self.spec] if isinstance(crops, dict) else crops

    def member_logits(self, crops) -> np.ndarray:
        """An ensemble's members' face logits, (n faces, n members); ``crops``: :meth:`views` (or one batch where
        every member cuts faces alike)."""
        return np.stack([m.face_logits(crops) for m in self.members], axis=1)

    def combine(self, member_logits: np.ndarray) -> np.ndarray:
        """An ensemble's face logit from its members' (see :mod:`.ensemble`).

        A member with ``hinge_at`` is a specialist: it adds ``weight * max(0, logit - hinge_at)``, so it can only
        raise a face's score, and only above its own score of all but the top few val reals (:mod:`.folds`)."""
        weights = np.array([m["weight"] for m in self.meta.members], float)
        if self.meta.stacking.get("rule") == "max":  # the most suspicious member, each rescaled on val
            offsets = np.array([m.get("offset", 0.0) for m in self.meta.members], float)
            return (member_logits * weights + offsets).max(axis=1)
        hinges = [(i, m["hinge_at"]) for i, m in enumerate(self.meta.members) if m.get("hinge_at") is not None]
        if hinges:
            member_logits = member_logits.copy()
            for i, at in hinges:
                member_logits[:, i] = np.maximum(0.0, member_logits[:, i] - at)
        return member_logits @ weights + float(self.meta.stacking.get("intercept", 0.0))

    def face_logits(self, crops) -> np.ndarray:
        """The fake logit of each face, all in one call: where the bundle says so, the mean over the crop
        and its mirror image (both views in the same batch); for an ensemble, its members' combined.

        ``crops``: one batch of this bundle's crops, or :meth:`views` (each member takes its own).
        """
        if self.members:
            return self.combine(self.member_logits(crops))
        crops = self._own(crops)
        if not self.meta.test_time_flip:
            return self.engine.logits(crops)
        return mirror_mean(self.engine.logits, crops)

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        return np.array([self.meta.calibration.probability(float(z)) for z in logits])

    def face_probabilities(self, crops) -> np.ndarray:
        """Calibrated fake probability of each face (``crops`` as :meth:`face_logits` takes them)."""
        return self.calibrated(self.face_logits(crops))

    @property
    def identity(self) -> dict:
        """What this bundle is, for pages and the API that show several models side by side."""
        return {"name": self.path.name, "version": self.version, "title": self.meta.training.get("title", "")}

    def scored_models(self, probs: np.ndarray, member_probs: np.ndarray | None = None):
        """(identity, face probabilities, thresholds) of every model in this verdict: members first."""
        out = []
        if member_probs is not None:
            out = [(m.identity, member_probs[:, i], m.meta.thresholds) for i, m in enumerate(self.members)]
        me = {**self.identity, "ensemble": True} if self.members else self.identity
        return [*out, (me, probs, self.meta.thresholds)]

    def verdict_for(
        self, prepared: PreparedImage, probs: np.ndarray, member_probs: np.ndarray | None = None
    ) -> Verdict:
        """The image's verdict from its faces' probabilities.

        ``member_probs``: an ensemble's members' probabilities, (faces, members).
        """
        p = float(probs.max())
        label = self.meta.thresholds.label(p) if prepared.face_found else LABEL_NO_FACE
        scored = self.scored_models(probs, member_probs)
        boxed = [k for k, c in enumerate(prepared.crops) if c.box]
        image_level = []
        for who, q, thresholds in scored:
            if not boxed:
                image_level.append({**who, "fake_probability": None, "label": LABEL_NO_FACE, "face": None})
                continue
            top = max(boxed, key=lambda k: q[k])
            image_level.append(
                {**who, "fake_probability": float(q[top]), "label": thresholds.label(float(q[top])), "face": top + 1}
            )
        return Verdict(
            label=label,
            fake_probability=p,
            confidence=confidence_for(label, p),
            threshold=self.meta.thresholds.decision,
            real_below=self.meta.thresholds.real_below,
            model_version=self.version,
            face_found=prepared.face_found,
            width=prepared.width,
            height=prepared.height,
            faces=[
                FaceResult(
                    box=c.box.as_list() if c.box else None,
                    fake_probability=float(probs[k]),
                    label=self.meta.thresholds.label(float(probs[k])) if c.box else LABEL_NO_FACE,
                    models=[
                        {
                            **who,
                            "fake_probability": float(q[k]),
                            "label": thresholds.label(float(q[k])) if c.box else LABEL_NO_FACE,
                        }
                        for who, q, thresholds in scored
                    ],
                )
                for k, c in enumerate(prepared.crops)
            ],
            models=image_level,
        )

    def judge(self, image: Image.Image | DecodedImage) -> Verdict:
        """Verdict for an upright RGB image (or one decoded by ``preprocessing.decode``): the most suspicious
        face decides."""
        prepared = self.prepare(image)
        crops = self.views(prepared.crops)
        if not self.members:
            return self.verdict_for(prepared, self.face_probabilities(crops))
        z = self.member_logits(crops)
        member_probs = np.stack([m.calibrated(z[:, i]) for i, m in enumerate(self.members)], axis=1)
        return self.verdict_for(prepared, self.calibrated(self.combine(z)), member_probs)

    def heatmaps(self, prepared: PreparedImage) -> np.ndarray:
        """Grad-CAM maps of the fake score for each face crop, in [0, 1] (see :mod:`.explain`).

        From the exported engine's second output where it has one, else by Grad-CAM on the Keras model;
        where the bundle scores the mirror image too, its map (mirrored back) is averaged in, as its logit is.
        """
        if self.members:
            # The members' maps, each weighed by its share of the ensemble's positive weights: those that cut
            # the face as the ensemble shows it (a map of a native-resolution patch is not a map of the face).
            weights = np.clip([m["weight"] for m in self.meta.members], 0, None)
            weights *= [m.spec == self.spec and m.draws_heatmaps for m in self.members]
            maps = [w * m.heatmaps(prepared) for w, m in zip(weights, self.members, strict=True) if w > 0]
            if not maps:
                return np.zeros((len(prepared.crops), self.spec.size, self.spec.size), np.float32)
            return sum(maps) / float(weights.sum())
        if not self.draws_heatmaps:
            raise NoHeatmaps(f"{self.path.name} {self.version} reads CLIP features: it has no map of the face to show")
        crops = prepared.batch()
        if self.meta.test_time_flip:
            maps = mirror_mean(self._raw_maps, crops, mirror_back=True)
        else:
            maps = self._raw_maps(crops)
        return upsample(maps, crops.shape[1:3])

    def _raw_maps(self, crops: np.ndarray) -> np.ndarray:
        if self.engine.has_maps:  # the export carries the maps: no TensorFlow needed
            return self.engine.activation_maps(crops)
        maps = self.meta.engines.get(LITERT, {}).get("maps") if self.engine.name == LITERT else None
        if maps:  # an integer export's maps missed the tolerance: its float twin draws them, still no TensorFlow
            with self._explainer_lock:
                if self._maps_engine is None:
                    self._maps_engine = LiteRTEngine(self.path / maps["file"], self._num_threads)
            return self._maps_engine.activation_maps(crops)
        with self._explainer_lock:
            if self._explainer is None:
                self._explainer = GradCam(self.model)
            return self._explainer.maps(crops)

    def warm_up(self) -> None:
        """One prediction so that the first user does not pay for graph tracing."""
        self.judge(Image.new("RGB", (self.meta.input_size, self.meta.input_size), (128, 128, 128)))
