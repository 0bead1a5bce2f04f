"""What each training source is, in words, and what a bundle was trained on, read from its metadata.

Pages say what a model knows from here, so that the text follows the bundle that
is served rather than a number written into a template.
"""

from __future__ import annotations

from ..inference.bundle import BundleMetadata, member_path, read_metadata
from ..inference.preprocessing import NATIVE

# Source (manifest column) -> (real or fake, what it is). Sources not listed are named as they are.
SOURCES = {
    "celeba": "CelebA celebrity portraits",
    "dfdc": "DFDC videos (real frames, and face swaps made from them)",
    "ffhq": "FFHQ portraits",
    "unsplash": "Unsplash portraits",
    "gan256": "GAN portraits (StyleGAN family)",
    "stylegan": "StyleGAN portraits",
    "tpdne1024": "StyleGAN2 portraits at 1024 px",
    "sdfd": "Stable Diffusion 2.1 faces",
    "ffpp_real": "FaceForensics++ YouTube interview videos",
    "ffpp_deepfakes": "FaceForensics++ Deepfakes face swaps",
    "ffpp_face2face": "FaceForensics++ Face2Face expression re-enactments",
    "ffpp_faceswap": "FaceForensics++ FaceSwap face swaps",
    "reviewed": "uploads to this platform that reviewers marked real or fake (export_reviewed)",
}


# Source -> a short name for tables on user pages, where codenames ("gan256", "sdfd") mean nothing.
SHORT_NAMES = {
    "celeba": "CelebA portraits",
    "dfdc": "DFDC video frames",
    "ffhq": "FFHQ portraits",
    "unsplash": "Unsplash portraits",
    "gan256": "GAN portraits (256 px)",
    "stylegan": "StyleGAN portraits",
    "tpdne1024": "StyleGAN2 portraits (1024 px)",
    "sdfd": "Stable Diffusion faces",
    "ffpp_real": "FaceForensics++ real videos",
    "ffpp_deepfakes": "FaceForensics++ Deepfakes",
    "ffpp_face2face": "FaceForensics++ Face2Face",
    "ffpp_faceswap": "FaceForensics++ FaceSwap",
    "reviewed": "Reviewed uploads",
}


def describe_source(name: str) -> str:
    return SOURCES.get(name, name)


def short_name(name: str) -> str:
    """A source's name for a table row: "gan256" -> "GAN portraits (256 px)"; "all" -> "All test images"."""
    if name == "all":
        return "All test images"
    return SHORT_NAMES.get(name, name.replace("_", " "))


BACKBONES = {"lite0": "EfficientNet-Lite0", "lite1": "EfficientNet-Lite1", "lite2": "EfficientNet-Lite2"}


def describe_network(meta: BundleMetadata) -> str:
    """What a single bundle's network is and what it looks at, in words, from its metadata."""
    side = f"{meta.input_size}×{meta.input_size}"
    if meta.crop_scale == NATIVE:
        return (
            f"a small network trained from scratch on the pixel-level noise (fixed high-pass residuals) of the "
            f"centre {side} pixels of the face, at the photo's own resolution, never resized"
        )
    backbone = BACKBONES.get(meta.training.get("recipe", {}).get("backbone", "lite0"), "EfficientNet-Lite0")
    return f"{backbone}, pretrained on ImageNet and fine-tuned to judge a {side} pixel crop of the face"


def training_summary(meta: BundleMetadata, path=None) -> dict:
    """``{"images", "sources": [(key, description, count)], "models": [...]}`` for a bundle or an ensemble.

    An ensemble's images are its members' (the largest training set of any member, since they
    share datasets), its sources the union of theirs, and ``models`` each member's own summary.
    """
    if not meta.is_ensemble:
        by_source = meta.training.get("train_by_source", {})
        counts: dict[str, int] = {}
        for key, n in by_source.items():
            source = key.split("/")[0]
            counts[source] = counts.get(source, 0) + n
        recipe = meta.training.get("recipe", {})
        return {
            "network": describe_network(meta),
            "images": meta.training.get("train_images"),
            "sources": [(s, describe_source(s), n) for s, n in sorted(counts.items())],
            "models": [],
            "self_blended": meta.training.get("self_blended_pseudo_fakes", 0),
            "pseudo_fakes_only": bool(recipe.get("pseudo_fakes_only")),
            "frame_pairs": meta.training.get("frame_pairs", 0) if recipe.get("mask_weight") else 0,
        }
    models = []
    for member in meta.members:
        member_meta = read_metadata(member_path(path, member))
        models.append(
            {
                "bundle": member["bundle"],
                "title": member.get("title") or member_meta.name,
                "version": member_meta.version,
                "weight": member["weight"],
                # how this ensemble has it judge a face: the crop and its mirror image, or the crop alone
                "mirror": bool(member.get("test_time_flip", member_meta.test_time_flip)),
                **training_summary(member_meta),
            }
        )
    merged: dict[str, tuple[str, int]] = {}
    for m in models:
        for key, description, n in m["sources"]:
            merged[key] = (description, max(n, merged.get(key, ("", 0))[1]))
    return {
        "network": f"{len(models)} models, each judging the face its own way, their scores combined by a rule "
        "fitted on validation images",
        "images": max((m["images"] or 0) for m in models),
        "sources": [(k, d, n) for k, (d, n) in sorted(merged.items())],
        "models": models,
        "self_blended": 0,
        "pseudo_fakes_only": False,
        "frame_pairs": 0,
    }
