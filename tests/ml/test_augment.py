"""Training augmentation: the degradations both classes get, and the self-blended pseudo-fakes."""

import numpy as np
import pytest

from detector.ml.inference.bundle import METADATA_FILE, read_metadata
from detector.ml.training.augment import blend_mask, degrade, mask_target, self_blend, training_view
from detector.ml.training.stage import stage_lineage
from detector.ml.training.weighting import add_pseudo_fakes
from tests.conftest import build_tiny_bundle


def face_like(size=64, seed=0):
    """A smooth random image: enough texture that any change to it shows."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, (8, 8, 3)).astype(np.float32)
    blocks = np.kron(base, np.ones((size // 8, size // 8, 1)))
    return np.clip(blocks + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)


def test_degrade_keeps_shape_and_is_reproducible():
    pixels = face_like()
    a = degrade(pixels, np.random.default_rng(3))
    b = degrade(pixels, np.random.default_rng(3))
    assert a.shape == pixels.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_blend_mask_covers_the_inner_face_and_leaves_the_corners():
    for seed in range(20):
        mask = blend_mask(224, np.random.default_rng(seed))
        assert mask.shape == (224, 224) and mask.dtype == np.float32
        assert mask.min() >= 0.0 and mask.max() == pytest.approx(1.0)
        assert mask[112, 112] > 0.9  # the face's centre comes from the source
        corners = [mask[:16, :16], mask[:16, -16:], mask[-16:, :16], mask[-16:, -16:]]
        assert max(float(c.max()) for c in corners) == 0.0  # the background stays the photo's own
        assert 0.15 < float((mask > 0.5).mean()) < 0.6


def test_self_blend_changes_the_face_but_not_the_background():
    pixels = face_like(224)
    for seed in range(10):
        out, mask = self_blend(pixels, np.random.default_rng(seed))
        assert out.shape == pixels.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out[:12, :12], pixels[:12, :12])
        np.testing.assert_array_equal(out[-12:, -12:], pixels[-12:, -12:])
        centre = (slice(80, 144), slice(80, 144))
        assert np.abs(out[centre].astype(int) - pixels[centre].astype(int)).mean() > 1.0
        # The mask says where the copy went: inside the face, not in the corners.
        assert mask.shape == (224, 224) and mask[112, 112] > 0.2 and mask[:12, :12].max() == 0.0


def test_self_blend_is_reproducible_from_its_seed():
    pixels = face_like(96)
    a, mask_a = self_blend(pixels, np.random.default_rng([1, 2]))
    b, mask_b = self_blend(pixels, np.random.default_rng([1, 2]))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mask_a, mask_b)
    assert not np.array_equal(a, self_blend(pixels, np.random.default_rng([1, 3]))[0])


def test_a_training_view_mirrors_the_crop_and_its_mask_together():
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, :16] = 255  # a bright left edge
    mask = np.zeros((64, 64), np.float32)
    mask[:, :16] = 1.0  # marked where the bright edge is
    flips = 0
    for seed in range(20):
        out, out_mask = training_view(pixels, mask, np.random.default_rng(seed), strength=0.0)
        np.testing.assert_array_equal(out.mean(-1) > 127, out_mask > 0.5)
        flips += bool(out_mask[:, -1].all())
    assert 0 < flips < 20  # sometimes mirrored, sometimes not


def test_strength_zero_leaves_the_crop_alone():
    pixels = face_like()
    np.testing.assert_array_equal(degrade(pixels, np.random.default_rng(0), strength=0.0), pixels)


def test_the_mask_target_is_the_changed_share_of_each_cell():
    mask = np.zeros((224, 224), np.float32)
    mask[:32, :32] = 1.0  # one whole cell of 7 x 7
    mask[32:48, 32:64] = 1.0  # half of the next one down the diagonal
    target = mask_target(mask, 7)
    assert target.shape == (7, 7)
    assert target[0, 0] == pytest.approx(1.0) and target[1, 1] == pytest.approx(0.5)
    assert target.sum() == pytest.approx(1.5)


def test_a_continued_run_records_every_earlier_stage(tmp_path):
    first = build_tiny_bundle(tmp_path / "first", version="1.0.0")
    meta = read_metadata(first)
    meta.training.update(recipe={"epochs": 1}, minutes=10.0, val_auc=0.9, chosen="epoch 1", history=[])
    (first / METADATA_FILE).write_text(meta.to_json())
    lineage = stage_lineage(read_metadata(first), 5.0)
    assert lineage["minutes_total"] == 15.0
    assert lineage["previous_stage"]["version"] == "1.0.0"

    second = build_tiny_bundle(tmp_path / "second", version="1.1.0")
    meta = read_metadata(second)
    meta.training.update(recipe={"epochs": 2}, minutes=5.0, val_auc=0.95, chosen="epoch 2", history=[], **lineage)
    (second / METADATA_FILE).write_text(meta.to_json())
    lineage = stage_lineage(read_metadata(second), 7.5)
    assert lineage["minutes_total"] == 22.5
    assert lineage["previous_stage"]["version"] == "1.1.0"
    assert lineage["previous_stage"]["previous_stage"]["version"] == "1.0.0"


def test_pseudo_fakes_carry_their_share_of_the_fake_class_and_the_classes_stay_even():
    y = np.array([0, 0, 0, 1, 1], np.float32)
    w = np.array([1.0, 1.0, 1.0, 2.0, 1.0], np.float32)
    y2, w2 = add_pseudo_fakes(y, w, 6, 0.25)
    assert y2.tolist() == [0, 0, 0, 1, 1] + [1] * 6
    assert w2[:3].tolist() == [1.0, 1.0, 1.0]  # reals untouched
    assert w2[y2 == 1].sum() == pytest.approx(3.0)  # the fake class keeps its weight
    assert w2[5:].sum() == pytest.approx(0.75)  # a quarter of it on the pseudo-fakes
    assert w2[3] / w2[4] == pytest.approx(2.0)  # the real fakes keep their proportions
    with pytest.raises(ValueError):
        add_pseudo_fakes(y, w, 6, 1.0)


def test_a_landmark_mask_covers_the_face_the_points_outline():
    from detector.ml.training.augment import landmark_mask

    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    points = np.stack([112 + 50 * np.cos(t), 120 + 60 * np.sin(t)], 1).astype(np.float32)
    for seed in range(5):
        mask = landmark_mask(points, 224, np.random.default_rng(seed))
        assert mask.shape == (224, 224) and mask.max() == pytest.approx(1.0)
        assert mask[120, 112] > 0.9 and mask[5, 5] == 0.0 and mask[120, 200] < 0.05
    pixels, blended = self_blend(face_like(224), np.random.default_rng(0), 0.2, points)
    assert blended[120, 112] > 0 and blended[5, 5] == 0.0


def test_the_landmark_model_finds_the_mesh_of_a_face():
    from PIL import Image as PILImage

    skimage_data = pytest.importorskip("skimage.data")

    from detector.ml.inference.preprocessing import FaceFinder, prepare
    from detector.ml.training.landmarks import POINTS, FaceLandmarker

    crop = prepare(PILImage.fromarray(skimage_data.astronaut()), FaceFinder(), 224, 0.2, max_faces=1).crops[0].pixels
    mesh = FaceLandmarker()(crop)
    assert mesh is not None and mesh.shape == (POINTS, 2)
    assert 20 < mesh[:, 0].mean() < 204 and 20 < mesh[:, 1].mean() < 204  # on the face, inside the crop
    assert FaceLandmarker()(np.asarray(PILImage.new("RGB", (224, 224), (40, 90, 200)))) is None  # no face: none
