from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from detector.services.review_export import ExportRefused, export


class Command(BaseCommand):
    help = (
        "Write the uploads reviewers marked real or fake as a training set (manifest.csv in the datasets' layout, "
        "PNG pixels without metadata, near-identical uploads in one split, nothing of their owners), for "
        "`train_detector --dataset OUT`. Only where DETECTOR_REVIEWED_FOR_TRAINING is on."
    )

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="a new (or empty) folder to write")

    def handle(self, *args, out, **options):
        try:
            done = export(out)
        except ExportRefused as exc:
            raise CommandError(f"nothing exported: {exc}") from exc
        self.stdout.write(f"exported {done.images} reviewed uploads in {done.groups} groups to {done.folder}")
        for split, counts in sorted(done.by_split.items()):
            self.stdout.write(f"  {split}: {counts['real']} real, {counts['fake']} fake")
        if done.unreadable:
            self.stdout.write(f"  {done.unreadable} could not be read from storage and were left out")
