"""Training-time augmentation of face crops.

``degrade`` is the random damage every training crop may get, real and fake
alike, so that compression and resolution carry no label; ``training_view``
adds a random mirror image, applied to the crop's manipulation mask too.

``self_blend`` makes a pseudo-fake from a real crop, after Shiohara and
Yamasaki, "Detecting Deepfakes with Self-Blended Images" (CVPR 2022): a
slightly recoloured, resharpened or softened and shifted copy of the face is
blended back onto the same photo through a soft, irregular face-shaped mask.
The result has no generator's fingerprint and no second identity, only the
traces every face swap leaves (a blending boundary, a colour and sharpness
mismatch between the inner face and its surroundings), so a classifier that
learns to see it has to learn those traces rather than one dataset's style.

Crops are square uint8 arrays made by the serving preprocessing, so the face
box sits near the middle with a margin of ``margin`` (0.2) of its side around
it; the mask is drawn in those coordinates.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

# Blend ratios of the original paper: a third of the pseudo-fakes partly transparent.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def degrade(pixels: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One random degradation of a crop; used for both classes alike.

    Down-and-up scaling, blur and JPEG re-compression, each at random; at
    ``strength`` 1 they happen to half, a third and 70 % of the crops, and
    ``strength`` scales those chances.
    """
    size = pixels.shape[0]
    im = Image.fromarray(pixels)
    if rng.random() < 0.5 * strength:
        small = int(size * rng.uniform(0.3, 0.9))
        im = im.resize((small, small), Image.BICUBIC).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.3 * strength:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.3)))
    if rng.random() < 0.7 * strength:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(40, 96)))
        im = Image.open(buf).convert("RGB")
    return np.asarray(im, np.uint8)


def training_view(pixels: np.ndarray, mask: np.ndarray, rng: np.random.Generator, strength: float = 1.0):
    """A random mirror image (of the crop and its mask alike), then :func:`degrade`."""
    if rng.random() < 0.5:
        pixels, mask = pixels[:, ::-1], mask[:, ::-1]
    return degrade(np.ascontiguousarray(pixels), rng, strength), np.ascontiguousarray(mask)


def mask_target(mask: np.ndarray, grid: int) -> np.ndarray:
    """A crop's manipulation mask averaged over a ``grid`` x ``grid`` map: the mask head's target."""
    im = Image.fromarray(np.asarray(mask, np.float32))  # mode "F": 32-bit float
    return np.asarray(im.resize((grid, grid), Image.BOX), np.float32)


def blend_mask(size: int, rng: np.random.Generator, margin: float = 0.2) -> np.ndarray:
    """A soft face-shaped mask in [0, 1], (size, size) float32.

    An ellipse over the inner face (the detector's box covers brows to chin),
    its outline jittered into an irregular polygon, then eroded or dilated and
    feathered by a random amount so the boundary's width and shape vary.
    """
    box_side = size / (1 + 2 * margin)
    cx = size / 2 + rng.uniform(-0.03, 0.03) * box_side
    cy = size / 2 + rng.uniform(0.0, 0.08) * box_side
    rx = box_side * rng.uniform(0.34, 0.46)
    ry = box_side * rng.uniform(0.42, 0.56)
    angle = rng.uniform(-0.15, 0.15)
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    wobble = 1 + rng.uniform(-0.08, 0.08, t.size)
    x, y = rx * np.cos(t) * wobble, ry * np.sin(t) * wobble
    xs = cx + x * np.cos(angle) - y * np.sin(angle)
    ys = cy + x * np.sin(angle) + y * np.cos(angle)
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).polygon(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255)
    k = 2 * int(rng.integers(1, 6)) + 1
    im = im.filter(ImageFilter.MinFilter(k) if rng.random() < 0.5 else ImageFilter.MaxFilter(k))
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 0.04 * size)))
    mask = np.asarray(im, np.float32) / 255.0
    return mask / max(float(mask.max()), 1e-6)


def landmark_mask(points: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft mask in [0, 1], (size, size) float32, drawn from the face's landmarks (as the SBI paper does).

    The convex hull of the mesh (the face from brows to chin), scaled about its centre
    by a random amount on each axis and its corners jittered, so the boundary does not
    always follow the face's outline; then eroded or dilated and feathered at random.
    """
    from scipy.spatial import ConvexHull

    hull = points[ConvexHull(points).vertices]
    centre = hull.mean(0)
    scale = rng.uniform([0.8, 0.8], [1.05, 1.05])
    side = float(np.ptp(hull[:, 0]) + np.ptp(hull[:, 1])) / 2
    hull = centre + (hull - centre) * scale + rng.uniform(-0.03, 0.03, hull.shape) * side
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).polygon([tuple(p) for p in hull.tolist()], fill=255)
    k = 2 * int(rng.integers(1, 6)) + 1
    im = im.filter(ImageFilter.MinFilter(k) if rng.random() < 0.5 else ImageFilter.MaxFilter(k))
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 0.04 * size)))
    mask = np.asarray(im, np.float32) / 255.0
    return mask / max(float(mask.max()), 1e-6)


def _recolour(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shift colour, brightness, contrast and saturation a little (the source's colour mismatch)."""
    a = np.asarray(im, np.float32) + rng.uniform(-12, 12, 3)
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.9, 1.1))
    im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.9, 1.1))
    return ImageEnhance.Color(im).enhance(rng.uniform(0.8, 1.2))


def _resharpen(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Soften (down-and-up scaling) or sharpen the source (the swap's resolution mismatch)."""
    size = im.width
    if rng.random() < 0.5:
        small = max(8, int(size * rng.uniform(0.25, 0.6)))
        return im.resize((small, small), Image.BILINEAR).resize((size, size), Image.BILINEAR)
    return im.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 3), percent=int(rng.integers(60, 180))))


def _shift(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scale by 0.95-1.05 about the centre and move by up to 3 % (the swap's misalignment)."""
    size = im.width
    s = rng.uniform(0.95, 1.05)
    dx, dy = rng.uniform(-0.03, 0.03, 2) * size
    # PIL's affine maps output to input coordinates.
    c = size / 2
    coeffs = (1 / s, 0, c - (c + dx) / s, 0, 1 / s, c - (c + dy) / s)
    return im.transform((size, size), Image.AFFINE, coeffs, Image.BILINEAR)


def self_blend(pixels: np.ndarray, rng: np.random.Generator, margin: float = 0.2, points: np.ndarray | None = None):
    """A pseudo-fake made from a real crop, a transformed copy of its face blended onto it: (pixels, mask).

    The mask follows the face's landmarks where ``points`` are given
    (:func:`landmark_mask`), else it is an ellipse where the face should be (:func:`blend_mask`).
    """
    target = Image.fromarray(pixels)
    source = target
    if rng.random() < 0.8:
        source = _recolour(source, rng)
    if rng.random() < 0.8:
        source = _resharpen(source, rng)
    source = _shift(source, rng)
    size = pixels.shape[0]
    shape = blend_mask(size, rng, margin) if points is None else landmark_mask(points, size, rng)
    mask = shape * float(rng.choice(BLEND_RATIOS))
    alpha = mask[..., None]
    out = np.asarray(source, np.float32) * alpha + pixels.astype(np.float32) * (1 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def reframe(pixels: np.ndarray, mask: np.ndarray, rng: np.random.Generator, zoom: float):
    """Half the time, zoom in: a random square of ``1 - zoom`` to all of the crop's side, scaled back up.

    Datasets frame faces differently (the FaceForensics++ crops are tight, forehead to
    chin; the serving crop of a photo has a margin around the face), and a framing seen
    mostly in one class would be learnt as a label. Zooming every crop of every source
    alike spreads each over the same range of framings. The crop is never padded, so
    there is no zooming out: padding would be a border that no served crop has.
    """
    if zoom <= 0 or rng.random() >= 0.5:
        return pixels, mask
    size = pixels.shape[0]
    side = int(round(size * rng.uniform(1 - zoom, 1.0)))
    x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
    box = (x, y, x + side, y + side)
    out = Image.fromarray(pixels).resize((size, size), Image.BICUBIC, box=box)
    changed = Image.fromarray(np.asarray(mask, np.float32)).resize((size, size), Image.BILINEAR, box=box)
    return np.asarray(out, np.uint8), np.asarray(changed, np.float32)
