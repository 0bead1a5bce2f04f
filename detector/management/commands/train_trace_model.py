import json

from django.core.management.base import BaseCommand, CommandError

from detector.ml.training import traces


class Command(BaseCommand):
    help = traces.__doc__.splitlines()[0]
    requires_system_checks = []  # it writes a bundle; it needs none

    def add_arguments(self, parser):
        traces.add_arguments(parser)

    def handle(self, *args, **options):
        try:
            result = traces.run(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))
