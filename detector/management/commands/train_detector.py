import json

from django.core.management.base import BaseCommand, CommandError

from detector.ml import training


class Command(BaseCommand):
    help = training.__doc__.splitlines()[0]
    requires_system_checks = []  # it writes the bundle that the checks look for

    def add_arguments(self, parser):
        training.add_arguments(parser)

    def handle(self, *args, **options):
        try:
            result = training.run(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))
