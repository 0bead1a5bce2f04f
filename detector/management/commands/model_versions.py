from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from detector.ml.inference.bundle import BundleError
from detector.services import activation, registry


class Command(BaseCommand):
    help = "List the model versions (every bundle in DETECTOR_MODEL_DIRS) and which serves; --activate one."

    def add_arguments(self, parser):
        parser.add_argument(
            "--activate",
            metavar="BUNDLE",
            help="a bundle folder's name in the model folders, or its path: it serves from the next analysis on, "
            "in every web process and worker",
        )

    def handle(self, *args, activate=None, **options):
        found = registry.versions()
        if activate:
            by_name = {v.name: v.path for v in found}
            try:
                activated = activation.activate(by_name.get(activate, Path(activate)))
            except BundleError as exc:
                raise CommandError(f"not activated: {exc}") from exc
            self.stdout.write(f"activated {activated.name} {activated.version}")
            return
        active = registry.active_path().resolve()
        for v in found:
            mark = "*" if v.path.resolve() == active else " "
            state = f"cannot serve: {v.error}" if v.error else (v.title or ("ensemble" if v.is_ensemble else ""))
            auc = f"test AUC {v.metrics['auc']:.3f}" if v.metrics and v.metrics.get("auc") is not None else ""
            self.stdout.write(
                f"{mark} " + "  ".join(part for part in (f"{v.name} {v.version}".strip(), auc, state) if part)
            )
