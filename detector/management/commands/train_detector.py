from django.core.management.base import BaseCommand

from detector.ml import training


class Command(BaseCommand):
    help = training.__doc__.splitlines()[0]
    requires_system_checks = []  # it writes the bundle that the checks look for

    def add_arguments(self, parser):
        training.build_parser(parser)

    def handle(self, *args, **opts):
        argv = []
        for action in training.build_parser()._actions:
            value = opts.get(action.dest)
            if action.dest == "help" or value is None or value is False:
                continue
            argv += [action.option_strings[0]] if value is True else [action.option_strings[0], str(value)]
        training.main(argv)
