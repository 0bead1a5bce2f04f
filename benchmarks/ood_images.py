"""Build a small folder of face images from outside ../shared, for evaluate_detector.

Real: photos shipped inside registry packages (scikit-image's astronaut; the
group photo and portrait in the insightface wheel, fetched from PyPI, not
installed).  Fake: face swaps made here by pasting one real face onto another
with a feathered elliptical mask, a manipulation the training data does not
contain.  Tiny and crude: it checks false accusations on unseen real photos
and whether the model notices an unseen, simple manipulation; it is no
benchmark.  The images stay under .cache/ and are never committed.

    .venv/bin/python benchmarks/ood_images.py .cache/ood
    .venv/bin/python manage.py evaluate_detector .cache/ood --by-folder --json
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detector.ml.preprocessing import FaceFinder  # noqa: E402

WHEEL = "insightface==2.1"


def insightface_photos(cache: Path) -> dict[str, Image.Image]:
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("insightface-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), WHEEL], check=True
        )
        wheels = list(cache.glob("insightface-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        return {
            name: Image.open(io.BytesIO(z.read(f"insightface/data/images/{name}"))).convert("RGB")
            for name in ("t1.jpg", "Tom_Hanks_54745.png")
        }


def swap(target: Image.Image, tbox, source: Image.Image, sbox) -> Image.Image:
    """Paste the source face over the target face, resized to its box, with a feathered ellipse."""
    x, y, w, h = [int(v) for v in tbox]
    sx, sy, sw, sh = [int(v) for v in sbox]
    face = source.crop((sx, sy, sx + sw, sy + sh)).resize((w, h), Image.LANCZOS)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).ellipse((w * 0.08, h * 0.05, w * 0.92, h * 0.98), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(2, w // 14)))
    out = target.copy()
    out.paste(face, (x, y), mask)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    args = p.parse_args()
    import skimage.data

    reals = {"astronaut.png": Image.fromarray(skimage.data.astronaut()), **insightface_photos(args.out / "_wheel")}
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
                fake = swap(
                    im, (target.x, target.y, target.w, target.h), donor_im, (donor.x, donor.y, donor.w, donor.h)
                )
                (args.out / "pasted_swaps" / "fake").mkdir(parents=True, exist_ok=True)
                fake.save(args.out / "pasted_swaps" / "fake" / f"{Path(name).stem}-face{i}-donor{j}.png")
                swaps += 1
                if swaps % 3 == 0:
                    break
    print(
        f"{len(reals)} real photos with {sum(len(f) for f in faces.values())} faces, {swaps} pasted swaps in {args.out}"
    )


if __name__ == "__main__":
    main()
