from datetime import date

from django.core.management.base import BaseCommand, CommandError

from detector.dispatch import BrokerUnavailable, start_reanalysis
from detector.ml.inference.bundle import BundleError
from detector.models import Label, Reanalysis
from detector.services import reanalysis, registry


class Command(BaseCommand):
    help = (
        "Analyse past uploads again with the active model version (or --version), through the workers where "
        "there are workers, else here. Uploads the version has analysed already are left as they are; where the "
        "version is the active one, its analysis becomes the upload's verdict, and the others are kept beside it."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Django's own --version (its version number) gives way to the model version's.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--version", help="a version (2.4.0), a bundle folder's name or its path")
        parser.add_argument("--since", type=date.fromisoformat, help="only uploads from this day on (YYYY-MM-DD)")
        parser.add_argument("--label", choices=[c for c, _ in Label.choices], help="only uploads with this verdict now")

    def handle(self, *args, version=None, since=None, label=None, **options):
        try:
            path = registry.find(version).path if version else None
            run, ids = reanalysis.plan(path, since=since, label=label or "")
        except BundleError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-analysis {run.pk}: {run.total} uploads for {run.name} {run.version} ({run.criteria})")
        if not ids:
            self.stdout.write("nothing to do: that version has analysed every upload chosen")
            return

        def progress(pk, outcome):
            if options["verbosity"] > 1 or outcome == "failed":
                self.stdout.write(f"  {pk}: {outcome}")

        try:
            where = start_reanalysis(run, ids, wait=True, on_each=progress)
        except BrokerUnavailable as exc:
            raise CommandError(f"not queued: {exc}") from exc
        run = Reanalysis.objects.get(pk=run.pk)
        if where == "here":
            self.stdout.write(f"analysed {run.analysed}, failed {run.failed}, skipped {run.skipped} of {run.total}")
        else:
            self.stdout.write(f"queued {run.total} jobs {where}; the admin's re-analyses page shows the progress")
