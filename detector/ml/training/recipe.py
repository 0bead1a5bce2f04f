"""A training recipe: everything that decides what a training stage learns, in one object.

The command line is made from the fields (:func:`add_arguments`), the trainer
takes the recipe whole (``training.train(recipe)``), and the bundle's metadata
keeps it whole (``training.recipe``), so a later stage can continue from a
bundle with the same recipe and change only what it says (as timm keeps one
``args`` and saves it as ``args.yaml``). Fields whose ``saved`` is False say
where and how fast to run, not what is learnt, and are not kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from ..inference.preprocessing import DEFAULT_INPUT_SIZE, DEFAULT_MARGIN
from .model import FIRST_TRAINED_BLOCK

log = logging.getLogger(__name__)

REPO_PARENT = Path(__file__).resolve().parents[4]
REPO_NAME = Path(__file__).resolve().parents[3].name
DEFAULT_DATASET = REPO_PARENT / "shared/datasets/faces"

# Keys of recipes saved by earlier code (bundles 1.0.0-1.4.0) and what they are called now.
RENAMED = {"epochs_finetune": "epochs", "lr_finetune": "lr"}
# Keys that described an earlier stage only: its head-only epochs (that stage is gone), where it started from.
STAGE_ONLY = {"epochs_head", "init_from"}


def option(help: str, *, flag: str | None = None, saved: bool = True, **argparse_kw):
    return {"help": help, "flag": flag, "saved": saved, "argparse": argparse_kw}


@dataclass(frozen=True)
class Recipe:
    datasets: tuple[Path, ...] = field(
        default=(DEFAULT_DATASET,),
        metadata=option(
            "dataset root with manifest.csv; repeat for several, each keeps its own splits "
            "(default: ../shared/datasets/faces)",
            flag="--dataset",
            action="append",
            type=Path,
        ),
    )
    out: Path | None = field(default=None, metadata=option("bundle folder to write", saved=False, type=Path))
    version: str = field(
        default="",
        metadata=option("version string stored in the bundle (required when training)", flag="--model-version"),
    )
    title: str = field(
        default="",
        metadata=option("what the model is, in a few words, for pages that show several models side by side"),
    )
    epochs: int = field(default=3, metadata=option("passes over the cached copies"))
    augment_copies: int = field(default=3, metadata=option("augmented copies of every training crop"))
    augment_strength: float = field(
        default=1.0,
        metadata=option(
            "scales the chances of down-and-up scaling, blur and JPEG re-compression (1: 50 %%, 30 %%, 70 %%)"
        ),
    )
    zoom: float = field(
        default=0.0,
        metadata=option(
            "zoom half the copies in by up to this share of the side, every source alike, so that "
            "framing carries no label (0: none)"
        ),
    )
    self_blend_copies: int = field(
        default=1, metadata=option("self-blended pseudo-fakes made from every real training crop (0: none)")
    )
    self_blend_share: float = field(
        default=0.2,
        metadata=option("share of the fake class's training weight carried by the self-blended pseudo-fakes"),
    )
    landmark_masks: bool = field(
        default=False,
        metadata=option(
            "draw the self-blend masks from each real crop's face landmarks (MediaPipe's face mesh) instead of an "
            "ellipse where the face should be"
        ),
    )
    pseudo_fakes_only: bool = field(
        default=False,
        metadata=option(
            "learn from the real images alone, the fakes being their self-blended copies (the training set's fakes "
            "are left out; val keeps them, to choose the epoch)"
        ),
    )
    exclude_sources: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "leave this source out of train and val, to measure it as an unseen method (repeat for several)",
            flag="--exclude-source",
            action="append",
            type=str,
        ),
    )
    choose_on_kinds: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "choose the epoch on the val fakes of this kind only (faceswap, gan, diffusion), beside every val real "
            "(repeat for several; default: every val fake)",
            flag="--choose-on-kind",
            action="append",
            type=str,
        ),
    )
    mask_weight: float = field(
        default=1.0,
        metadata=option(
            "weight of the mask head's loss (where the face was changed) beside the classifier's (0: none)"
        ),
    )
    lr: float = field(default=3e-4, metadata=option("peak learning rate (AdamW, warm-up, cosine decay)"))
    batch: int = field(default=64, metadata=option("training batch size"))
    seed: int = field(default=2026, metadata=option("seed of every random choice"))
    backbone: str = field(
        default="lite0",
        metadata=option(
            "the network: EfficientNet-Lite0, -Lite1 or -Lite2, trained by ImageNet at 224, 240 and 260 px "
            "(give --input-size to match, and --first-trained-block: Lite1 and 2 have 21 blocks)",
            choices=("lite0", "lite1", "lite2"),
        ),
    )
    input_size: int = field(default=DEFAULT_INPUT_SIZE, metadata=option("face crop size in pixels"))
    margin: float = field(default=DEFAULT_MARGIN, metadata=option("margin around the face box, as a share of its side"))
    first_trained_block: int = field(
        default=FIRST_TRAINED_BLOCK,
        metadata=option(
            "MBConv blocks before this one (0-15 in Lite0, 0-20 in Lite1 and 2) stay frozen and their output is cached"
        ),
    )
    bf16: bool = field(
        default=False,
        metadata=option("run the trained 1x1 convolutions in bfloat16 (fast on CPUs with AMX; weights stay float32)"),
    )
    init_from: Path | None = field(
        default=None,
        metadata=option(
            "start from this bundle's weights instead of ImageNet, with its recipe for every option not given",
            type=Path,
        ),
    )
    test_time_flip: bool = field(
        default=True,
        metadata=option("score a face as the mean logit of its crop and its mirror image"),
    )
    max_false_accusation: float = field(
        default=0.03,
        metadata=option("largest share of val reals, overall and per source, called Deepfake at the threshold"),
    )
    max_missed_fakes: float = field(
        default=0.10,
        metadata=option("largest share of all val fakes called Real below the lower threshold"),
    )
    limit: int | None = field(default=None, metadata=option("train on a random subset (smoke runs)"))
    workers: int | None = field(
        default=None, metadata=option("processes for face crops and copies (default: all cores)", saved=False)
    )
    cache_dir: Path | None = field(
        default=None, metadata=option("keep face crops here between runs", saved=False, type=Path)
    )

    def saved(self, init_from_version: str | None = None) -> dict:
        """The recipe as the bundle keeps it: what decides the weights, with paths as names, not machine paths."""
        skip = {"version", "title"}  # kept in the metadata beside the recipe
        kept = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["saved"] and f.name not in skip}
        kept["datasets"] = [dataset_name(p) for p in self.datasets]
        kept["exclude_sources"] = list(self.exclude_sources)
        kept["choose_on_kinds"] = list(self.choose_on_kinds)
        kept["init_from"] = (
            None if self.init_from is None else f"{Path(self.init_from).name} {init_from_version} (its weights)"
        )
        return kept

    @classmethod
    def from_saved(cls, saved: dict) -> dict:
        """The fields of a recipe kept by a bundle, earlier formats included, as keyword arguments.

        Keys that only described that stage (where it started from, its datasets'
        names) are not carried over; unknown keys are reported and dropped.
        """
        names = {f.name for f in fields(cls) if f.metadata["saved"]}
        kwargs = {}
        for key, value in saved.items():
            key = RENAMED.get(key, key)
            if key in STAGE_ONLY or key == "datasets":
                continue
            if key in ("exclude_sources", "choose_on_kinds"):
                value = tuple(value)
            if key not in names:
                log.warning("the earlier stage's recipe has %r, which this code does not know; ignored", key)
                continue
            kwargs[key] = value
        return kwargs

    def continuing(self, earlier: dict, given: set[str]) -> Recipe:
        """This recipe, with the earlier stage's (``earlier``, as saved) for every field not in ``given``."""
        inherited = {k: v for k, v in self.from_saved(earlier).items() if k not in given}
        return replace(self, **inherited)


def dataset_name(path: Path) -> str:
    """A dataset as the metadata names it: its path in the repository (.cache/datasets/ffpp) or in the team's
    shared folder beside it (shared/datasets/faces), else its folder's name; never a path of one machine."""
    bases = ((REPO_PARENT / REPO_NAME, ""), (REPO_PARENT / "shared", "shared/"))
    # as given first (a shared folder may be a link to elsewhere), then with every link followed
    for candidate, resolve in ((Path(os.path.abspath(path)), False), (Path(path).resolve(), True)):
        for base, prefix in bases:
            base = base.resolve() if resolve else Path(os.path.abspath(base))
            if candidate.is_relative_to(base):
                return prefix + str(candidate.relative_to(base))
    return Path(path).resolve().name


def add_arguments(parser: argparse.ArgumentParser, cls=None) -> argparse.ArgumentParser:
    """One option per field of the recipe class (:class:`Recipe` unless told); options not given are left out
    of the parsed result (see :func:`from_options`)."""
    for f in fields(cls or Recipe):
        meta = f.metadata
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        kw = {"help": meta["help"], "default": argparse.SUPPRESS, "dest": f.name, **meta["argparse"]}
        if f.type in ("bool", bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif "type" not in kw:
            default = f.default if f.default is not MISSING else None
            kw["type"] = type(default) if default is not None else int
        parser.add_argument(flag, **kw)
    return parser


def from_options(options: dict, cls=None):
    """The recipe (a :class:`Recipe` unless told) from parsed options (any other keys are ignored), and the
    names of the fields that were given."""
    cls = cls or Recipe
    tuples = {f.name for f in fields(cls) if isinstance(f.default, tuple)}  # repeated options
    given = {k: v for k, v in options.items() if k in {f.name for f in fields(cls)}}
    for key in tuples & set(given):
        given[key] = tuple(given[key])
    if "datasets" in given:
        given["datasets"] = tuple(Path(p) for p in given["datasets"])
    return cls(**given), set(given)


def describe(recipe: Recipe) -> dict:
    """Every field, for printing at the start of a run."""
    return json.loads(json.dumps(asdict(recipe), default=str))


def begin(recipe) -> tuple[float, int]:
    """The start of a training stage: the recipe names its bundle and version, every random choice is seeded;
    returns (when it started, the worker processes to use)."""
    import os
    import time

    import keras

    if recipe.out is None or not recipe.version:
        raise ValueError("a training recipe needs out and version")
    started = time.time()
    keras.utils.set_random_seed(recipe.seed)
    return started, recipe.workers or os.cpu_count() or 1


def command_line(doc: str, add_arguments, run, argv=None) -> None:
    """A training module's ``main``: parse its options, run the stage, print what it says (JSON)."""
    import logging

    parser = add_arguments(argparse.ArgumentParser(description=doc.splitlines()[0]))
    options = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        print(json.dumps(run(options), indent=2))
    except ValueError as exc:
        parser.error(str(exc))
