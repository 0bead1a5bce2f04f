import json
import shutil
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from detector.ml.inference.bundle import BundleError
from detector.ml.measurement.dataset import load_samples
from detector.ml.measurement.promotion import compare
from detector.services import registry
from detector.services.inference import DetectorUnavailable, get_detector

PROMOTION_FILE = "promotion.json"


class Command(BaseCommand):
    help = (
        "Check a newly trained bundle against the active version on the val and test splits of each --dataset and "
        "on the reviewed uploads' test part (--reviewed), and refuse it where it is worse beyond the sampling error "
        "(with the reason); otherwise register it as a model version (copied into a model folder, not active: "
        "activate it in the admin, or with `model_versions --activate`)."
    )

    def add_arguments(self, parser):
        parser.add_argument("bundle", type=Path, help="the new bundle's folder")
        parser.add_argument(
            "--dataset",
            action="append",
            type=Path,
            required=True,
            help="a dataset with manifest.csv, compared on its val and test splits (repeat for several)",
        )
        parser.add_argument("--reviewed", type=Path, help="the folder export_reviewed wrote: its test part is used")
        parser.add_argument(
            "--into",
            type=Path,
            help="the model folder to register it in (default: the last of DETECTOR_MODEL_DIRS)",
        )

    def handle(self, *args, bundle, dataset, reviewed, into, **options):
        found = registry.describe(bundle)
        if found.error:
            raise CommandError(f"refused: {found.error}")
        try:
            registry.check_serves(bundle)
        except BundleError as exc:
            raise CommandError(f"refused: {exc}") from exc
        taken = {v.version: v.name for v in registry.versions()}
        if found.version in taken:
            raise CommandError(f"refused: version {found.version} is registered already ({taken[found.version]})")
        into = into or registry.model_dirs()[-1]
        if (into / bundle.name).exists() and (into / bundle.name).resolve() != bundle.resolve():
            raise CommandError(f"refused: {into / bundle.name} exists")
        sets = {}
        for root in dataset:
            for split in ("val", "test"):
                sets[f"{root.name} {split}"] = load_samples(root, split)
        if reviewed:
            sets["reviewed test"] = load_samples(reviewed, "test")
        sets = {name: samples for name, samples in sets.items() if samples}
        if not sets:
            raise CommandError("refused: the datasets given have no val or test images to compare on")
        try:
            serving = get_detector()
        except DetectorUnavailable as exc:
            raise CommandError(f"the active version cannot be loaded to compare with: {exc}") from exc
        from detector.ml.inference.predictor import Detector

        results = compare(Detector(bundle), serving, sets)
        self.stdout.write(f"{found.name} {found.version} against the active {serving.version}:")
        for c in results:
            self.stdout.write(
                f"  {c.name} ({c.images} images): AUC {_n(c.new['auc'])} [{_n(c.new['auc_low'])}-"
                f"{_n(c.new['auc_high'])}] vs {_n(c.old['auc'])}; reals accused {_n(c.new['far'])} vs "
                f"{_n(c.old['far'])}" + ("  WORSE" if c.worse else "")
            )
        reasons = [r for c in results for r in c.reasons]
        if reasons:
            raise CommandError(
                "refused: worse than the active version beyond the sampling error:\n  " + "\n  ".join(reasons)
            )
        target = into / bundle.name
        if target.resolve() != bundle.resolve():
            into.mkdir(parents=True, exist_ok=True)
            shutil.copytree(bundle, target)
        record = {
            "checked_at": timezone.now().isoformat(),
            "against": serving.version,
            "sets": [asdict(c) for c in results],
        }
        (target / PROMOTION_FILE).write_text(json.dumps(record, indent=2))
        self.stdout.write(
            f"registered {found.name} {found.version} in {into} (not active: activate it in the admin, or with "
            f"`manage.py model_versions --activate {found.name}`)"
        )


def _n(x) -> str:
    return "—" if x is None else f"{x:.3f}"
