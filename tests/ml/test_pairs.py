"""Real and swapped crops of one frame: the changed region, and which swaps have their frame."""

import numpy as np

from detector.ml.measurement.dataset import Sample
from detector.ml.training.pairs import changed_region, matching_reals
from tests.ml.test_augment import face_like


def swapped(frame: np.ndarray, box=(slice(60, 160), slice(70, 150))) -> np.ndarray:
    """The frame with a different 'face' in ``box``: what a face swap does to a crop."""
    fake = frame.copy()
    fake[box] = face_like(224, seed=9)[box]
    return fake


def test_the_changed_region_covers_the_swapped_face_and_not_the_background():
    frame = face_like(224)
    changed = changed_region(swapped(frame), frame)
    assert changed is not None and changed.shape == (224, 224) and changed.dtype == np.float32
    assert changed[70:150, 80:140].mean() > 0.95  # inside the swap
    assert changed[:40].max() == 0.0 and changed[-40:].max() == 0.0  # the untouched rows above and below


def test_re_encoding_noise_alone_is_not_a_change():
    frame = face_like(224)
    noisy = np.clip(frame.astype(int) + np.random.default_rng(0).integers(-2, 3, frame.shape), 0, 255)
    assert changed_region(noisy.astype(np.uint8), frame).max() == 0.0


def test_crops_of_different_frames_are_not_a_pair():
    frame = face_like(224)
    other = face_like(224, seed=5)  # the person moved: the whole crop differs, edges included
    assert changed_region(swapped(other), frame) is None


def test_only_swaps_with_exactly_one_real_of_their_group_are_paired():
    def s(label, group, source="dfdc", kind="faceswap"):
        return Sample(f"{group}-{label}.jpg", label, source, "train", kind, group)

    samples = [
        s(0, "a"),
        s(1, "a"),
        s(1, "a"),  # two swaps of video a
        s(1, "b"),  # video b's real is not in the dataset
        s(0, "c"),
        s(0, "c"),
        s(1, "c"),  # two reals: which frame is unclear
        s(1, "d", "gan256", "gan"),
        s(0, "d", "celeba", "photo"),  # not a swap
    ]
    assert sorted(matching_reals(samples)) == [(1, 0), (2, 0)]
