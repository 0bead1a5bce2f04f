import json

from django.core.management.base import BaseCommand, CommandError

from detector.ml.training import stage as training


class Command(BaseCommand):
    help = training.__doc__.splitlines()[0]
    requires_system_checks = []  # it writes the bundle that the checks look for

    def add_arguments(self, parser):
        training.add_arguments(parser)
        parser.epilog = "--init-from active: continue from the model version that serves now."

    def handle(self, *args, **options):
        if str(options.get("init_from")) == "active":  # continue from the version serving now
            from detector.services.registry import active_path

            options["init_from"] = active_path()
        try:
            result = training.run(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))
