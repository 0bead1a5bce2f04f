"""A Celery worker whose analyses hang: the integration tests kill it in the middle of a job.

python -m celery -A tests.integration.hanging_worker worker ...   (HANGING_WORKER_MARKER=/path)
"""

import os
import time
from pathlib import Path

from celery.signals import worker_process_init

from deepfake_site.celery import app

__all__ = ["app"]


@worker_process_init.connect
def make_analyses_hang(**kwargs):
    from detector.services import analysis

    def hang(detection, decoded=None, data=None):
        Path(os.environ["HANGING_WORKER_MARKER"]).write_text(str(detection.pk))
        time.sleep(600)

    analysis.analyse = hang
