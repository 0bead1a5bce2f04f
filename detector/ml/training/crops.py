"""The main-face crop of every training image, made by the serving preprocessing, in worker processes.

Each worker process holds one face finder (:func:`init_worker`, :func:`worker_finder`);
:mod:`.pairs` uses the same workers.
"""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..inference.preprocessing import PREPROCESSING_VERSION, RESIZED, FaceFinder, decode_image, prepare
from ..measurement.dataset import Sample

_finder: FaceFinder | None = None


def init_worker() -> None:
    """A worker process's own face finder (its interpreters are not shared between processes)."""
    global _finder
    _finder = FaceFinder(num_threads=1)


def worker_finder() -> FaceFinder:
    if _finder is None:
        raise RuntimeError("crops.init_worker() has not run in this process")
    return _finder


_landmarker = None


def _landmarks_of(crop: np.ndarray):
    global _landmarker
    if _landmarker is None:
        from .landmarks import FaceLandmarker

        _landmarker = FaceLandmarker(num_threads=1)
    return _landmarker(crop)


def crop_landmarks(crops: np.ndarray, indices, workers: int) -> dict[int, np.ndarray]:
    """The face mesh of each crop of ``indices`` where the landmark model finds a face."""
    indices = [int(i) for i in indices]
    with Pool(workers) as pool:
        found = pool.imap(_landmarks_of, (crops[i] for i in indices), chunksize=32)
        pairs = zip(indices, tqdm(found, total=len(indices), desc="landmarks", unit="img"), strict=True)
        return {i: points for i, points in pairs if points is not None}


def crop_one(args):
    path, size, margin, scale = args
    prepared = prepare(decode_image(str(path)), worker_finder(), size, margin, max_faces=1, scale=scale)
    return prepared.crops[0].pixels, prepared.face_found


def crop_samples(samples: list[Sample], size: int, margin: float, workers: int, desc: str, scale: str = RESIZED):
    """Main-face crops of every sample (uint8) and whether a face was found."""
    crops = np.empty((len(samples), size, size, 3), np.uint8)
    found = np.empty(len(samples), bool)
    jobs = [(s.path, size, margin, scale) for s in samples]
    with Pool(workers, initializer=init_worker) as pool:
        results = pool.imap(crop_one, jobs, chunksize=32)
        for i, (pixels, ok) in enumerate(tqdm(results, total=len(jobs), desc=desc, unit="img")):
            crops[i], found[i] = pixels, ok
    return crops, found


def cached_crops(samples, size, margin, workers, cache_dir: Path | None, name: str, scale: str = RESIZED):
    """:func:`crop_samples`, kept in ``cache_dir`` (where given) under a name that says what was cropped."""
    if cache_dir is None:
        return crop_samples(samples, size, margin, workers, f"faces {name}", scale)
    kind = "" if scale == RESIZED else f"-{scale}"
    path = cache_dir / f"crops-{name}-p{PREPROCESSING_VERSION}-{size}-{margin}{kind}-{len(samples)}.npz"
    if path.exists():
        data = np.load(path)
        return data["crops"], data["found"]
    crops, found = crop_samples(samples, size, margin, workers, f"faces {name}", scale)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, crops=crops, found=found)
    return crops, found
