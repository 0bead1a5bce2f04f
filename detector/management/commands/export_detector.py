import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detector.ml.inference.bundle import BundleError
from detector.ml.training import export


class Command(BaseCommand):
    help = export.__doc__.splitlines()[0]
    requires_system_checks = []  # it rewrites the bundle that the checks look at

    def add_arguments(self, parser):
        export.build_parser(parser, default_bundle=settings.DETECTOR_MODEL)

    def handle(self, *args, bundle, dataset, images, float16, int8, out, model_version, **opts):
        try:
            record = export.export_bundle(bundle, dataset, images, float16, int8, out, model_version)
        except export.ExportRefused as exc:
            self.stdout.write(json.dumps(exc.check, indent=2))  # what was measured, for the record
            raise CommandError(str(exc)) from exc
        except BundleError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(record, indent=2))
