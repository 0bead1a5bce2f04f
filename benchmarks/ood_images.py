"""Build a small folder of face images from outside ../shared, for evaluate_detector.

Real: photos shipped inside registry packages (scikit-image's astronaut,
matplotlib's Grace Hopper; the group photo and portrait in the insightface
wheel, fetched from PyPI, not installed); and, in a folder of their own that
no swap is made from, the four official portraits and press photos in the
face_recognition source package's tests (fetched from PyPI the same way).
Fake: face swaps made here by pasting one real face onto another with a
feathered elliptical mask, a manipulation the training data does not contain,
once as pasted and once with the face's colours matched to the target's first
(as face-swap tools do).  Tiny and crude: it checks false accusations on unseen
real photos and whether the model notices an unseen, simple manipulation; it
is no benchmark.  The images stay under .cache/ and are never committed.

    .venv/bin/python benchmarks/ood_images.py .cache/ood
    .venv/bin/python manage.py evaluate_detector .cache/ood --by-folder --json
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detector.ml.inference.preprocessing import FaceFinder  # noqa: E402

WHEEL = "insightface==2.1"
SDIST = "face_recognition==1.3.0"
PRESS_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")  # not the cut-outs of obama.jpg


def fetch(spec: str, cache: Path, pattern: str, *pip_options: str) -> Path:
    """The package file of ``spec`` from the package registry, kept in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    found = list(cache.glob(pattern))
    if not found:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), *pip_options, spec]
        subprocess.run(command, check=True)
        found = list(cache.glob(pattern))
    return found[0]


def insightface_photos(cache: Path) -> dict[str, Image.Image]:
    with zipfile.ZipFile(fetch(WHEEL, cache, "insightface-*.whl")) as z:
        return {
            name: Image.open(io.BytesIO(z.read(f"insightface/data/images/{name}"))).convert("RGB")
            for name in ("t1.jpg", "Tom_Hanks_54745.png")
        }


def press_photos(cache: Path) -> dict[str, Image.Image]:
    with tarfile.open(fetch(SDIST, cache, "face_recognition-*.tar.gz", "--no-binary", ":all:")) as tar:
        top = tar.getnames()[0].split("/")[0]
        return {
            name: Image.open(io.BytesIO(tar.extractfile(f"{top}/tests/test_images/{name}").read())).convert("RGB")
            for name in PRESS_PHOTOS
        }


def match_colours(face: Image.Image, target: Image.Image, mask: Image.Image) -> Image.Image:
    """Give the pasted face the target face's colour mean and spread under the mask (as swap tools do)."""
    src, dst = np.asarray(face, np.float32), np.asarray(target, np.float32)
    inside = np.asarray(mask) > 128
    mu_s, sd_s = src[inside].mean(0), src[inside].std(0) + 1e-3
    mu_d, sd_d = dst[inside].mean(0), dst[inside].std(0)
    return Image.fromarray(np.clip((src - mu_s) / sd_s * sd_d + mu_d, 0, 255).astype(np.uint8))


def swap(target: Image.Image, tbox, source: Image.Image, sbox, matched: bool = False) -> Image.Image:
    """Paste the source face over the target face, resized to its box, with a feathered ellipse.

    ``matched``: first match the face's colours to the target's, the way face-swap tools do.
    """
    x, y, w, h = [int(v) for v in tbox]
    sx, sy, sw, sh = [int(v) for v in sbox]
    face = source.crop((sx, sy, sx + sw, sy + sh)).resize((w, h), Image.LANCZOS)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).ellipse((w * 0.08, h * 0.05, w * 0.92, h * 0.98), fill=255)
    if matched:
        face = match_colours(face, target.crop((x, y, x + w, y + h)), mask)
    mask = mask.filter(ImageFilter.GaussianBlur(max(2, w // 14)))
    out = target.copy()
    out.paste(face, (x, y), mask)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    args = p.parse_args()
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    reals = {
        "astronaut.png": Image.fromarray(skimage.data.astronaut()),
        "grace_hopper.png": hopper,
        **insightface_photos(args.out / "_wheel"),
    }
    finder = FaceFinder()
    faces = {name: finder(im) for name, im in reals.items()}
    for name, im in reals.items():
        (args.out / "photos" / "real").mkdir(parents=True, exist_ok=True)
        im.save(args.out / "photos" / "real" / Path(name).with_suffix(".png").name)
    donors = [(reals[n], f) for n in reals for f in faces[n]]
    swaps = 0
    for name, im in reals.items():
        for i, target in enumerate(faces[name]):
            for j, (donor_im, donor) in enumerate(donors):
                if donor_im is im:
                    continue
                for folder, matched in (("pasted_swaps", False), ("colour_matched_swaps", True)):
                    fake = swap(
                        im,
                        (target.x, target.y, target.w, target.h),
                        donor_im,
                        (donor.x, donor.y, donor.w, donor.h),
                        matched,
                    )
                    (args.out / folder / "fake").mkdir(parents=True, exist_ok=True)
                    fake.save(args.out / folder / "fake" / f"{Path(name).stem}-face{i}-donor{j}.png")
                swaps += 1
                if swaps % 3 == 0:
                    break
    press = press_photos(args.out / "_wheel")
    (args.out / "press_photos" / "real").mkdir(parents=True, exist_ok=True)
    for name, im in press.items():
        im.save(args.out / "press_photos" / "real" / Path(name).with_suffix(".png").name)
    print(
        f"{len(reals)} real photos with {sum(len(f) for f in faces.values())} faces, {swaps} pasted swaps "
        f"(each also colour-matched), and {len(press)} press photos in {args.out}"
    )


if __name__ == "__main__":
    main()
