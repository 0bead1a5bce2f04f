"""Training: the copies and their mask targets, their weights, and a whole run on a generated dataset."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.ml.training.copies import STREAMS, CopyMaker, copy_jobs
from detector.ml.training.pairs import FramePair
from detector.ml.training.weighting import copy_labels_and_weights
from tests.ml.test_augment import face_like


def maker(pairs=None, **kw):
    crops = np.stack([face_like(64, seed=i) for i in range(5)])
    # real, paired swap, unpaired swap, GAN face, real
    labels = np.array([0, 1, 1, 1, 0])
    kinds = np.array(["photo", "faceswap", "faceswap", "gan", "photo"])
    changed = np.zeros((64, 64), np.float32)
    changed[16:48, 16:48] = 1.0
    pairs = pairs if pairs is not None else {1: FramePair(1, changed)}
    args = dict(crops=crops, labels=labels, kinds=kinds, pairs=pairs, seed=3, margin=0.2, strength=1.0, grid=2)
    return CopyMaker(**{**args, **kw})


def test_each_kind_of_crop_gets_its_mask_target():
    m = maker()
    real, paired, unpaired, gan = (m(("plain", i, 0)) for i in range(4))
    assert real[1].tolist() == [[0, 0], [0, 0]] and real[2] == 1.0  # nothing changed, and that is known
    assert paired[1].astype(float).tolist() == [[0.25, 0.25], [0.25, 0.25]] and paired[2] == 1.0
    assert unpaired[2] == 0.0  # a swap without its frame: where it changed is unknown, so no mask loss
    assert gan[1].tolist() == [[1, 1], [1, 1]] and gan[2] == 1.0  # a generated face is synthetic throughout
    for pixels, target, _ in (real, paired, unpaired, gan):
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8 and target.dtype == np.float16


def test_self_blended_copies_are_marked_where_they_were_blended():
    frame = face_like(224)
    m = CopyMaker(
        crops=frame[None],
        labels=np.array([0]),
        kinds=np.array(["photo"]),
        pairs={},
        seed=0,
        margin=0.2,
        strength=0.0,
        grid=7,
    )
    for copy in range(3):
        pixels, target, weight = m(("self_blend", 0, copy))
        assert weight == 1.0 and target.shape == (7, 7)
        assert float(target[3, 3]) > 0.2 and float(target[0, 0]) == 0.0  # the face's centre, not the corner
        assert not np.array_equal(pixels, frame)


def test_copies_are_reproducible_and_each_copy_differs():
    m = maker()
    a, b, c = m(("plain", 0, 0)), m(("plain", 0, 0)), m(("plain", 0, 1))
    np.testing.assert_array_equal(a[0], b[0])
    assert any(not np.array_equal(m(("plain", 0, 0))[0], m(("plain", 0, k))[0]) for k in range(1, 6))
    assert c[0].shape == a[0].shape


def test_copy_labels_and_weights_follow_the_jobs():
    from detector.ml.measurement.dataset import Sample

    kinds = [(0, "a"), (0, "a"), (1, "b"), (1, "c")]
    samples = [Sample(f"{i}.jpg", label, source) for i, (label, source) in enumerate(kinds)]
    labels = np.array([s.label for s in samples])
    jobs = copy_jobs(labels, augment_copies=2, self_blend_copies=1)
    assert [k for k, _, _ in jobs] == ["plain"] * 8 + ["self_blend"] * 2
    assert [(i, c) for k, i, c in jobs if k == "plain"][3:5] == [(3, 0), (0, 1)]
    assert [i for k, i, _ in jobs if k == "self_blend"] == [0, 1]  # made from the reals
    y, w = copy_labels_and_weights(samples, jobs, self_blend_share=0.2)
    assert y.tolist() == [0, 0, 1, 1] * 2 + [1, 1]
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())  # both classes weigh the same
    assert w[-2:].sum() / w[y == 1].sum() == pytest.approx(0.2)  # the self-blended fakes' share
    with pytest.raises(ValueError):
        copy_labels_and_weights(samples, jobs[::-1], 0.2)
    assert list(STREAMS) == ["plain", "self_blend"]


def write_dataset(root):
    """A tiny manifest dataset: reals, DFDC-like swaps with their real frame, GAN faces; train and val."""
    rows = []

    def add(split, label, source, kind, group, pixels):
        path = f"{split}/{label}/{source}__{len(rows)}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / path)
        rows.append(dict(path=path, label=label, source=source, kind=kind, group=group, split=split))

    for split, n in (("train", 4), ("val", 3)):
        for k in range(n):
            frame = face_like(96, seed=100 * (split == "val") + k)
            add(split, "real", "dfdc", "faceswap", f"dfdc:{split}{k}", frame)
            fake = frame.copy()
            fake[24:72, 28:68] = 255 - fake[24:72, 28:68]
            add(split, "fake", "dfdc", "faceswap", f"dfdc:{split}{k}", fake)
            red = frame.copy()
            red[..., 0] = 250
            add(split, "fake", "gan256", "gan", f"gan:{split}{k}", red)
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "source", "kind", "group", "split", "resized", "sha256"])
        writer.writeheader()
        writer.writerows({**r, "resized": "no", "sha256": ""} for r in rows)


def small_recipe(tmp_path, **changes):
    """A one-epoch recipe on :func:`write_dataset`'s images (written to ``tmp_path/data``), 64 px crops."""
    from detector.ml.training.recipe import Recipe

    write_dataset(tmp_path / "data")
    settings = dict(epochs=1, augment_copies=1, self_blend_copies=1, input_size=64, batch=8, workers=1)
    return Recipe(datasets=(tmp_path / "data",), out=tmp_path / "bundle", version="0.0.1", **{**settings, **changes})


def test_a_whole_training_run_writes_a_calibrated_bundle(tmp_path):
    from detector.ml.inference.bundle import read_metadata
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.stage import train

    meta = train(small_recipe(tmp_path, bf16=True, choose_on_kinds=("faceswap",)))
    t = meta.training
    assert t["recipe"]["choose_on_kinds"] == ["faceswap"]  # the epoch chosen on the swaps and the reals
    assert t["frame_pairs"] == 4 and t["self_blended_pseudo_fakes"] == 4
    assert len(t["history"]) == 1 and 0.0 <= t["val_auc"] <= 1.0
    assert t["recipe"]["mask_weight"] == 1.0 and t["calibration"]["split"] == "val"
    assert meta.test_time_flip and t["calibration"]["face_logit"] == "mean over the crop and its mirror image"
    assert read_metadata(tmp_path / "bundle").weights_sha256 == meta.weights_sha256
    # The bundle is the classifier alone, in float32, and serves.
    config = json.dumps(Detector(tmp_path / "bundle").model.get_config())
    assert "mask_logit" not in config and "bfloat16" not in config
    served = Detector(tmp_path / "bundle")
    verdict = served.judge(Image.fromarray(face_like(96)))
    told = served.meta.thresholds.label(verdict.fake_probability) if verdict.face_found else "No face"
    assert verdict.label == told and 0.0 <= verdict.fake_probability <= 1.0
    # Where its validation scores stand, for the words of a verdict: quantiles of each class, rising.
    reference = t["calibration"]["reference"]
    assert reference["reals"] + reference["fakes"] == t["calibration"]["images"]
    assert len(reference["reals_quantiles"]) == reference["points"]
    assert reference["reals_quantiles"] == sorted(reference["reals_quantiles"])


def test_a_lite2_backbone_trains_serves_and_is_continued_only_as_lite2(tmp_path):
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.recipe import Recipe
    from detector.ml.training.stage import train

    # 72 px, not a multiple of 32 (as Lite2's own 260 px is not): the last feature map is 3 x 3, and so is the
    # mask head's target.
    meta = train(small_recipe(tmp_path, backbone="lite2", first_trained_block=7, input_size=72))
    assert meta.training["recipe"]["backbone"] == "lite2" and meta.training["recipe"]["first_trained_block"] == 7
    assert meta.input_size == 72
    served = Detector(tmp_path / "bundle")
    assert any(layer.name == "efficientnet_lite2" for layer in served.model.layers)
    assert 0.0 <= served.judge(Image.fromarray(face_like(96))).fake_probability <= 1.0
    again = Recipe(**{**vars(small_recipe(tmp_path)), "out": tmp_path / "again", "init_from": tmp_path / "bundle"})
    with pytest.raises(ValueError, match="EfficientNet-Lite2; this recipe asks for lite0"):
        train(again)


def approx_tree(actual, expected, path="metadata"):
    """Equal apart from float round-off, key by key, so a failure names the field."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), f"{path}: keys {sorted(set(actual) ^ set(expected))} differ"
        for key in expected:
            approx_tree(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            approx_tree(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-4, abs=1e-6), path
    else:
        assert actual == expected, path


def test_the_recipe_trains_the_same_weights_as_the_code_before_it(tmp_path):
    """The split of training.py into a recipe and modules changed nothing a run makes.

    The reference was recorded by the code before the split (commit 9ba456f) on this
    dataset with the same settings: each weight array's shape, sum and norm, and the
    metadata. Since then the metadata keeps the recipe whole (more keys, the old ones
    unchanged) and names the dataset it was given instead of always shared/datasets/faces,
    and the lower threshold has its own rule (at most 10 % of val fakes called Real)
    instead of sitting a fixed distance below the upper one.
    """
    from detector.ml.inference.bundle import read_metadata
    from detector.ml.inference.predictor import Detector
    from detector.ml.training.stage import train

    reference = json.loads((Path(__file__).parent / "data/training-reference.json").read_text())
    recipe = small_recipe(tmp_path)
    train(recipe)
    weights = Detector(tmp_path / "bundle").model.get_weights()
    assert len(weights) == len(reference["weights"])
    for i, (w, (shape, total, norm)) in enumerate(zip(weights, reference["weights"], strict=True)):
        w = w.astype(np.float64)
        assert list(w.shape) == shape, i
        assert np.sqrt((w**2).sum()) == pytest.approx(norm, rel=1e-5, abs=1e-7), i
        assert w.sum() == pytest.approx(total, abs=1e-5 * max(norm, 1e-3) * np.sqrt(w.size)), i

    meta = json.loads(read_metadata(tmp_path / "bundle").to_json())
    expected = reference["metadata"]
    for d in (meta, expected):
        d.pop("weights_sha256", None)
        for key in ("finished", "minutes", "dataset"):
            d["training"].pop(key, None)
    saved, old_recipe = meta["training"]["recipe"], expected["training"]["recipe"]
    assert {k: saved[k] for k in old_recipe} == old_recipe  # the old keys, the same values
    assert saved == {**old_recipe, **recipe.saved()}  # and the rest of the recipe beside them
    meta["training"]["recipe"] = old_recipe
    chosen = meta["training"]["calibration"]
    assert chosen.pop("real_rule").startswith("at most 10% of all validation fakes")
    assert set(chosen.pop("by_source")) == {"dfdc", "gan256"}
    assert chosen.pop("reference")["points"] == 201  # the val quantiles, kept since for the verdict's words
    assert expected["training"]["calibration"].pop("uncertain_band_logit") == 1.0
    assert meta["thresholds"]["real_below"] <= meta["thresholds"]["deepfake_from"]
    meta["thresholds"]["real_below"] = expected["thresholds"]["real_below"]
    approx_tree(meta, expected)


def test_with_several_datasets_each_weighs_its_classes_alike():
    from detector.ml.measurement.dataset import Sample
    from detector.ml.training.weighting import balanced_weights

    rows = [(0, "celeba", "faces")] * 8 + [(1, "gan", "faces")] * 2 + [(0, "yt", "ffpp")] * 3 + [(1, "fs", "ffpp")] * 6
    samples = [Sample(f"{i}.jpg", label, source, dataset=d) for i, (label, source, d) in enumerate(rows)]
    w = balanced_weights(samples)
    y = np.array([s.label for s in samples])
    d = np.array([s.dataset for s in samples])
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum()) and w.sum() == pytest.approx(len(rows))
    for name in ("faces", "ffpp"):
        assert w[(d == name) & (y == 0)].sum() == pytest.approx(w[(d == name) & (y == 1)].sum())


def test_reframing_zooms_pixels_and_mask_alike():
    from detector.ml.training.augment import reframe

    pixels = face_like(64)
    mask = np.zeros((64, 64), np.float32)
    mask[24:40, 24:40] = 1.0
    same = reframe(pixels, mask, np.random.default_rng(0), 0.0)
    assert same[0] is pixels and same[1] is mask  # zoom 0: nothing drawn, nothing changed
    zoomed = [reframe(pixels, mask, np.random.default_rng(k), 0.4) for k in range(20)]
    changed = [(p, m) for p, m in zoomed if not np.array_equal(p, pixels)]
    assert 3 <= len(changed) <= 17  # about half the copies
    for p, m in changed:
        assert p.shape == pixels.shape and p.dtype == np.uint8 and m.shape == mask.shape
        assert m.sum() > mask.sum()  # zoomed in: the marked square covers more of the crop


def test_self_blended_fakes_alone_weigh_as_the_reals_they_were_made_from():
    from detector.ml.measurement.dataset import Sample

    samples = [Sample(f"{i}.jpg", 0, "big") for i in range(6)] + [Sample("s.jpg", 0, "small")]
    labels = np.array([s.label for s in samples])
    jobs = copy_jobs(labels, augment_copies=1, self_blend_copies=2)
    y, w = copy_labels_and_weights(samples, jobs, self_blend_share=0.2)
    assert y.tolist() == [0] * 7 + [1] * 14
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())
    small = [k for k, (_, i, _) in enumerate(jobs) if i == 6]
    big = [k for k, (_, i, _) in enumerate(jobs) if i == 0]
    # within each class, the small source keeps the same weight against the big one
    assert w[small[1]] / w[big[1]] == pytest.approx(w[small[0]] / w[big[0]])
    assert w[small[1]] + w[small[2]] == pytest.approx(w[small[0]])  # its two blends weigh as its real


def test_a_training_run_can_leave_a_source_out_and_learn_from_self_blends_alone(tmp_path):
    from detector.ml.training.recipe import Recipe
    from detector.ml.training.stage import read_splits

    write_dataset(tmp_path / "data")
    recipe = Recipe(datasets=(tmp_path / "data",), exclude_sources=("gan256",), pseudo_fakes_only=True)
    train_samples, val_samples = read_splits(recipe, "train", "val")
    assert {s.label for s in train_samples} == {0} and {s.source for s in train_samples} == {"dfdc"}
    assert {(s.label, s.source) for s in val_samples} == {(0, "dfdc"), (1, "dfdc")}  # val keeps its fakes
