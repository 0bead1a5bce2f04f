"""From review to the next model: export_reviewed (only where allowed; pixels only; near-duplicates in one split;
no owner), train_detector continuing from the active version with it, and promote_bundle, which refuses a
worse or damaged bundle and registers a good one without activating it."""

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from PIL import Image

from detector.models import Detection, Kind, ReviewVerdict, Status
from detector.services import activation, registry
from detector.services.detections import perceptual_hash
from tests.conftest import build_tiny_bundle, installed
from tests.ml.test_augment import face_like

pytestmark = pytest.mark.django_db

OWNER, SECRET_NAME = "alice-the-owner", "my-secret-trip.jpg"


def jpeg(pixels: np.ndarray, quality=92, gps=False) -> bytes:
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    if gps:  # a location, as a phone writes it
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def stored(owner, data: bytes, review="", face_found=True) -> Detection:
    image = Image.open(io.BytesIO(data))
    detection = Detection(
        original_name=SECRET_NAME,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=perceptual_hash(image),
        image_format="JPEG",
        content_type="image/jpeg",
        size_bytes=len(data),
        width=image.width,
        height=image.height,
        kind=Kind.IMAGE,
        status=Status.DONE,
        label="Uncertain" if face_found else "No face",
        face_found=face_found,
        review_verdict=review,
        review_note=f"note about {OWNER}",
        owner=owner,
    )
    detection.image.save(f"{detection.pk}.jpg", ContentFile(data), save=False)
    detection.save()
    return detection


def tampered(pixels: np.ndarray) -> np.ndarray:
    out = pixels.copy()
    out[24:72, 28:68] = 255 - out[24:72, 28:68]
    return out


@pytest.fixture
def review_set(django_user_model):
    """24 reviewed uploads (real faces, and the same faces tampered), one re-encoded copy of the first, a GPS tag
    on it, and uploads that must not be exported (not reviewed, no face)."""
    owner = django_user_model.objects.create_user(OWNER, password="pw-owner-123")
    rows = []
    for k in range(12):
        face = face_like(96, seed=500 + k)
        rows.append(stored(owner, jpeg(face, gps=k == 0), ReviewVerdict.REAL))
        rows.append(stored(owner, jpeg(tampered(face)), ReviewVerdict.FAKE))
    copy = stored(owner, jpeg(face_like(96, seed=500), quality=60), ReviewVerdict.REAL)
    stored(owner, jpeg(face_like(96, seed=900)))  # not reviewed
    stored(owner, jpeg(face_like(96, seed=901)), ReviewVerdict.FAKE, face_found=False)  # nothing was judged
    return rows, copy


def read_manifest(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_nothing_is_exported_unless_the_operator_allows_it(review_set, tmp_path, settings, client):
    settings.DETECTOR_REVIEWED_FOR_TRAINING = False
    with pytest.raises(CommandError, match="DETECTOR_REVIEWED_FOR_TRAINING"):
        call_command("export_reviewed", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "may be used to train" not in client.get(reverse("detector:upload")).content.decode()
    settings.DETECTOR_REVIEWED_FOR_TRAINING = True
    for page in ("detector:upload", "detector:batch"):
        assert "may be used to train the next version of the model" in client.get(reverse(page)).content.decode()


def test_the_export_has_pixels_only_keeps_near_duplicates_together_and_nothing_of_the_owner(
    review_set, tmp_path, settings
):
    settings.DETECTOR_REVIEWED_FOR_TRAINING = True
    rows, copy = review_set
    out = tmp_path / "reviewed"
    call_command("export_reviewed", out, stdout=io.StringIO())
    manifest = read_manifest(out)
    assert len(manifest) == 25  # 24 + the re-encoded copy; neither the unreviewed nor the faceless one
    assert {r["source"] for r in manifest} == {"reviewed"} and {r["kind"] for r in manifest} == {"reviewed"}
    assert sorted(r["label"] for r in manifest).count("fake") == 12
    assert set(manifest[0]) == {"path", "label", "source", "kind", "group", "split", "resized", "sha256"}
    # The first photo and its re-encoded copy are one group, so one split.
    by_digest = {}
    for r in manifest:
        pixels = np.asarray(Image.open(out / r["path"]))
        by_digest[r["path"]] = (r, pixels)
        assert hashlib.sha256((out / r["path"]).read_bytes()).hexdigest() == r["sha256"]
        assert r["path"].startswith(f"{r['split']}/{r['label']}/")
    groups = {}
    for r in manifest:
        groups.setdefault(r["group"], set()).add(r["split"])
    assert all(len(splits) == 1 for splits in groups.values())
    assert len(groups) == 24  # the copy joined its original's group
    # Pixels only: no EXIF (the GPS tag is gone), no text chunks; nothing of the owner, the name or the note.
    for path in out.rglob("*.png"):
        with Image.open(path) as im:
            assert not im.getexif() and "exif" not in im.info and not im.text
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for secret in (OWNER, SECRET_NAME, "note about", str(rows[0].pk)):
        assert secret.encode() not in everything
    with pytest.raises(CommandError, match="exists and is not an empty folder"):
        call_command("export_reviewed", out)
    # The same reviews export to the same splits next time.
    call_command("export_reviewed", tmp_path / "again", stdout=io.StringIO())
    assert {(r["sha256"], r["split"]) for r in read_manifest(tmp_path / "again")} == {
        (r["sha256"], r["split"]) for r in manifest
    }


def write_colours(root: Path, n: int = 30) -> Path:
    """A dataset where fakes are red and reals blue, in val and test (as the tiny bundles see colours)."""
    rows = []
    rng = np.random.default_rng(0)
    for split in ("val", "test"):
        for k in range(n):
            for label, colour in (("real", (40, 60, 200)), ("fake", (200, 60, 40))):
                pixels = np.clip(np.array(colour) + rng.integers(-30, 30, (48, 48, 3)), 0, 255).astype(np.uint8)
                path = f"{split}/{label}/c{k}.png"
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(root / path)
                rows.append(
                    {
                        "path": path,
                        "label": label,
                        "source": "colours",
                        "kind": "gan",
                        "group": f"g{k}",
                        "split": split,
                        "resized": "no",
                        "sha256": "",
                    }
                )
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def serving(tmp_path, settings):
    folder = tmp_path / "models"
    good = build_tiny_bundle(folder / "sees-red", version="1.0.0", kernel=(0.05, 0.0, -0.05))
    settings.DETECTOR_MODEL_DIRS = [folder]
    settings.DETECTOR_MODEL = good
    with installed(None):
        yield folder


def promote(*args) -> str:
    out = io.StringIO()
    call_command("promote_bundle", *map(str, args), stdout=out)
    return out.getvalue()


def test_a_worse_a_damaged_or_a_taken_bundle_is_refused_with_the_reason(serving, tmp_path):
    data = write_colours(tmp_path / "colours")
    worse = build_tiny_bundle(tmp_path / "new" / "sees-blue", version="1.1.0", kernel=(-0.05, 0.0, 0.05))
    with pytest.raises(CommandError, match=r"colours val: AUC 0\.0\d\d \(95 % interval .*below the serving"):
        promote(worse, "--dataset", data)
    damaged = build_tiny_bundle(tmp_path / "new" / "damaged", version="1.2.0")
    (damaged / "model.keras").write_bytes(b"not the weights it was")
    with pytest.raises(CommandError, match="refused: .*checksum mismatch"):
        promote(damaged, "--dataset", data)
    same = build_tiny_bundle(tmp_path / "new" / "again", version="1.0.0")
    with pytest.raises(CommandError, match=r"version 1\.0\.0 is registered already \(sees-red\)"):
        promote(same, "--dataset", data)
    assert [v.name for v in registry.versions()] == ["sees-red"]


def test_review_to_export_to_training_to_promotion_end_to_end(review_set, serving, tmp_path, settings):
    """The loop an operator runs: the active version trained on, reviewed uploads exported, a stage continued from
    the active version with them, and the new bundle checked and registered, not activated."""
    from tests.ml.test_training import write_dataset

    settings.DETECTOR_REVIEWED_FOR_TRAINING = True
    data = tmp_path / "data"
    write_dataset(data)
    small = ["--epochs", "1", "--augment-copies", "1", "--self-blend-copies", "1", "--batch", "8", "--workers", "1"]
    base = serving / "faces-base"
    call_command(
        "train_detector",
        "--dataset",
        str(data),
        "--out",
        str(base),
        "--model-version",
        "1.5.0",
        "--input-size",
        "64",
        *small,
        stdout=io.StringIO(),
    )
    activation.activate(base)
    out = tmp_path / "reviewed"
    call_command("export_reviewed", out, stdout=io.StringIO())

    new = tmp_path / "runs" / "faces-next"
    printed = io.StringIO()
    call_command(
        "train_detector",
        "--init-from",
        "active",
        "--dataset",
        str(data),
        "--dataset",
        str(out),
        "--out",
        str(new),
        "--model-version",
        "1.6.0",
        *small,
        stdout=printed,
    )
    from detector.ml.inference.bundle import read_metadata

    trained = read_metadata(new).training
    assert trained["recipe"]["init_from"] == "faces-base 1.5.0 (its weights)"
    assert trained["train_by_source"]["reviewed/fake"] > 0 and trained["train_by_source"]["reviewed/real"] > 0
    assert trained["recipe"]["input_size"] == 64  # the active version's recipe, continued

    said = promote(new, "--dataset", data, "--reviewed", out)
    assert "faces-next 1.6.0 against the active 1.5.0" in said and "registered faces-next 1.6.0" in said
    assert "data val (" in said and "data test" not in said  # the generated dataset has no test split
    registered = {v.name: v for v in registry.versions()}
    assert registered["faces-next"].usable and (serving / "faces-next" / "promotion.json").is_file()
    assert registry.active_path() == base  # registered, not active
