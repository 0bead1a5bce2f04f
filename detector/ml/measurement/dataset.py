"""The labelled face dataset: its manifest, and image folders with real/ and fake/."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
CLASS_INDEX = {"real": 0, "fake": 1}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 1 = fake, 0 = real; written out, never inferred from folder order
    source: str
    split: str = ""
    kind: str = ""
    group: str = ""  # images of one group (a source video and its swaps) share a split
    dataset: str = ""  # the folder of the manifest it came from


def read_manifest(root: Path, split: str | None = None) -> list[Sample]:
    """Samples of ``root/manifest.csv``, optionally of one split."""
    root = Path(root)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        Sample(
            root / r["path"],
            CLASS_INDEX[r["label"]],
            r["source"],
            r["split"],
            r["kind"],
            r.get("group", ""),
            root.name,
        )
        for r in rows
        if split is None or r["split"] == split
    ]


def read_folders(root: Path, by_folder: bool = False) -> list[Sample]:
    """Images under ``root`` whose path has a ``real`` or ``fake`` folder (any depth).

    The source is the top-level folder under ``root`` with ``by_folder``, else
    the label folder's name.
    """
    root = Path(root)
    samples = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        parts = path.relative_to(root).parts
        label_dirs = [p for p in parts[:-1] if p.lower() in CLASS_INDEX]
        if not label_dirs:
            continue
        label = CLASS_INDEX[label_dirs[-1].lower()]
        source = parts[0] if by_folder and len(parts) > 2 else label_dirs[-1].lower()
        samples.append(Sample(path, label, source))
    return samples


def load_samples(root: Path, split: str | None = None, by_folder: bool = False) -> list[Sample]:
    """A manifest dataset (with ``split``) or a folder tree of real/ and fake/ images."""
    root = Path(root)
    if (root / "manifest.csv").is_file():
        return read_manifest(root, split)
    return read_folders(root, by_folder)


def limited(train: list[Sample], val: list[Sample], limit: int, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A random ``limit`` of the training samples and as many val ones (all where fewer), the same on every run."""
    rng = np.random.default_rng(seed)
    train = [train[i] for i in sorted(rng.choice(len(train), limit, replace=False))]
    val = [val[i] for i in sorted(rng.choice(len(val), min(limit, len(val)), replace=False))]
    return train, val


def counts_by_source(samples: list[Sample]) -> dict[str, int]:
    """``{"celeba/real": n, "gan256/fake": n, ...}``: what a bundle records it was trained on."""
    counts = Counter((s.label, s.source) for s in samples)
    return {f"{source}/{'fake' if label else 'real'}": n for (label, source), n in sorted(counts.items())}
