"""The app as the benchmarks run it: production settings, plain HTTP on 127.0.0.1, a throw-away database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def app_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """Environment for a server in ``tmp``: DEBUG off, HTTPS-only features off for loopback."""
    return {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "benchmark-only-not-secret-0123456789abcdef",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "DETECTOR_MEDIA_STORAGE": "local",  # the soak checks the files in this folder
        "DJANGO_MEDIA_ROOT": str(tmp / "media"),
        "DJANGO_STATIC_ROOT": str(tmp / "static"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **overrides,
    }


def prepare(env: dict[str, str]) -> None:
    """Migrate the database and collect static files, as a deployment does before starting."""
    for args in (["migrate", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def gunicorn_command(port: int, workers: int, timeout: int, *extra: str) -> list[str]:
    """The production gunicorn.conf.py, named rather than found in the working folder; the benchmark's own
    address, workers and timeout on the command line win over it, and its access log (a line a request) is off."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    return [
        gunicorn,
        "deepfake_site.wsgi",
        "-c",
        str(ROOT / "gunicorn.conf.py"),
        "--access-logfile",
        os.devnull,
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "--timeout",
        str(timeout),
        *extra,
    ]
