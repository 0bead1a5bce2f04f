import json
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detector.ml.inference.bundle import BundleError
from detector.ml.inference.predictor import Detector
from detector.ml.measurement.dataset import load_samples
from detector.ml.measurement.evaluation import format_table, plot_roc, recompressed, report, score_samples
from detector.services.inference import DetectorUnavailable, get_detector


class Command(BaseCommand):
    help = "Measure the detector on a dataset: AUC, detection and false-accusation rates, overall and per source."

    def add_arguments(self, parser):
        parser.add_argument(
            "directory",
            type=Path,
            help="folder with real/ and fake/ image folders (any depth), or a dataset root with manifest.csv",
        )
        parser.add_argument("--split", default="test", help="manifest split to use (default: test)")
        parser.add_argument("--by-folder", action="store_true", help="source = top-level folder under DIRECTORY")
        parser.add_argument("--roc", type=Path, help="write ROC curves to this PNG")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print one JSON object instead of a table"
        )
        parser.add_argument("--limit", type=int, help="evaluate only the first N images (smoke runs)")
        parser.add_argument(
            "--bundle", type=Path, help="the model bundle to measure (default: the version that serves now)"
        )
        parser.add_argument(
            "--recompress",
            type=int,
            metavar="QUALITY",
            help="re-encode every image as JPEG at this quality (1-95) before analysis, in memory, as a messaging "
            "app would: measures the detector on images that all have the same compression",
        )
        parser.add_argument(
            "--scale",
            type=float,
            default=1.0,
            metavar="FACTOR",
            help="with --recompress: scale every image by FACTOR (0-1, Lanczos) before re-encoding it",
        )

    def handle(self, *args, directory, split, by_folder, roc, as_json, limit, recompress, scale, bundle, **opts):
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder")
        if recompress is not None and not 1 <= recompress <= 95:
            raise CommandError("--recompress takes a JPEG quality from 1 to 95")
        if not 0 < scale <= 1 or (scale != 1 and recompress is None):
            raise CommandError("--scale takes a factor in (0, 1] and needs --recompress")
        transform = partial(recompressed, quality=recompress, scale=scale) if recompress is not None else None
        samples = load_samples(directory, split, by_folder)[:limit]
        if not samples:
            raise CommandError(f"no images found under {directory} (expected real/ and fake/ folders or a manifest)")
        try:
            detector = Detector(bundle, num_threads=settings.DETECTOR_THREADS) if bundle else get_detector()
        except (BundleError, DetectorUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        scores = score_samples(detector, samples, progress=not as_json and opts["verbosity"] > 0, transform=transform)
        rep = report(scores, detector.meta.thresholds.decision, detector.version)
        if transform:
            rep["recompressed"] = {"jpeg_quality": recompress, "scale": scale}
        for problem in scores.unreadable:
            self.stderr.write(f"skipped unreadable image {problem}")
        if roc:
            plot_roc(scores, roc, f"{detector.version} on {directory.name}" + (f" ({split})" if split else ""))
        if as_json:
            self.stdout.write(json.dumps(rep))
        else:
            self.stdout.write(format_table(rep))
            if roc:
                self.stdout.write(f"ROC curves written to {roc}")
