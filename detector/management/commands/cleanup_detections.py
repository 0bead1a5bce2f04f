from datetime import timedelta

from django.core.management.base import BaseCommand

from detector.dispatch import requeue
from detector.services.cleanup import cleanup


class Command(BaseCommand):
    help = (
        "Delete detections past DETECTOR_RETENTION_DAYS; remove orphan files and rows without files; "
        "analyse again or fail stuck detections. Safe any time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--grace-minutes", type=int, default=15, help="leave younger files and rows alone")
        parser.add_argument("--dry-run", action="store_true", help="report what would be done, change nothing")
        parser.add_argument(
            "--no-reanalyse", action="store_true", help="mark stuck detections failed instead of analysing them again"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="remove what looks lost even where all of it does, or more than DETECTOR_CLEANUP_MAX_REMOVALS",
        )

    def handle(self, *args, grace_minutes, dry_run, no_reanalyse, force, **opts):
        report = cleanup(timedelta(minutes=grace_minutes), dry_run=dry_run, reanalyse=not no_reanalyse, force=force)
        for why in report.refused:
            self.stderr.write(f"refused: {why}")
        prefix = "would " if dry_run else ""
        queued = failed = 0
        if not dry_run:
            again = requeue(report.stuck)
            queued, failed = len(again.queued), len(again.failed)
        self.stdout.write(
            f"{prefix}delete {len(report.expired)} detection(s) past the retention period; "
            f"{prefix}remove {len(report.orphan_files)} orphan file(s); "
            f"{prefix}remove {len(report.rows_without_file)} row(s) without their file; "
            f"{prefix}re-analyse {len(report.stuck)} stuck detection(s); "
            f"{queued} queued for the workers again; "
            f"{len(report.marked_failed) + failed} marked failed"
        )
