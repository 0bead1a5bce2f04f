"""Real processes against real services: gunicorn serving the app, Celery workers on Redis, a shared database.

Each test starts its own web server and workers on a fresh database (SQLite file, or a
fresh PostgreSQL database when DATABASE_URL points at PostgreSQL) and a private Redis database.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.conftest import ROOT, image_bytes

REDIS_URL = os.environ.get("DETECTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def redis_answers() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return True
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not redis_answers(), reason=f"no Redis answers at {REDIS_URL}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def database_url(tmp_path):
    """A fresh database that web and workers share: PostgreSQL when the suite runs on it, else a SQLite file."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    import psycopg

    name = f"integration_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stack:
    """The platform as separate processes: one gunicorn web process and any number of Celery workers."""

    def __init__(self, tmp: Path, database_url: str):
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        self.tmp = tmp
        self.env = {
            **os.environ,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "integration-tests-not-secret-0123456789abcdef",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "DATABASE_URL": database_url,
            "DJANGO_MEDIA_ROOT": str(tmp / "media"),
            "DJANGO_STATIC_ROOT": str(tmp / "static"),
            "DETECTOR_RATE_LIMIT": "",
            "DETECTOR_PRELOAD": "",
            "CELERY_BROKER_URL": REDIS_URL,
            "DETECTOR_TASK_REDELIVER_AFTER": "3",  # a killed worker's job comes back after 3 s
            "DETECTOR_TASK_RESTORE_INTERVAL": "1",
            "HANGING_WORKER_MARKER": str(tmp / "hanging.txt"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        self.processes: list[subprocess.Popen] = []
        for command in (["migrate"], ["collectstatic", "--noinput"]):
            subprocess.run([sys.executable, "manage.py", *command, "-v", "0"], cwd=ROOT, env=self.env, check=True)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}/"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.start("web", [str(gunicorn), "deepfake_site.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"])
        self.wait_for(lambda: requests.get(self.base + "healthz", timeout=2).ok, 60, "the web server")
        self.session = requests.Session()
        page = self.session.get(self.base, timeout=10).text
        self.csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(proc)
        return proc

    def worker(self, name: str, app: str = "deepfake_site") -> subprocess.Popen:
        cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "-n", f"{name}@%h", "-c", "1"]
        return self.start(name, [*cmd, "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"])

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    @staticmethod
    def wait_for(condition, seconds: float, what: str):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                result = condition()
                if result:
                    return result
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}")

    def upload(self) -> dict:
        response = self.session.post(
            self.base,
            data={"csrfmiddlewaretoken": self.csrf},
            files={"image": ("portrait.jpg", image_bytes("JPEG", size=(480, 360)), "image/jpeg")},
            headers={"Accept": "application/json", "Referer": self.base},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def status(self, detection: dict) -> dict:
        return self.session.get(self.base.rstrip("/") + detection["status_url"], timeout=10).json()

    def stop(self):
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def stack(tmp_path, database_url):
    stack = Stack(tmp_path, database_url)
    yield stack
    stack.stop()


def analysed_lines(log: str, detection_id: str) -> int:
    """Analyses of this detection that a worker's pool process finished (Celery's log format)."""
    return len(re.findall(rf"/ForkPoolWorker-\d+\] detection {detection_id} analysed", log))


def test_an_upload_goes_pending_then_done_on_a_worker(stack):
    stack.worker("w1")
    detection = stack.upload()
    assert detection["status"] == "pending"  # the web process only stored and queued it
    seen = [detection["status"]]

    def finished():
        status = stack.status(detection)
        seen.append(status["status"])
        return status if status["status"] in ("done", "failed") else None

    final = stack.wait_for(finished, 60, "the worker's verdict")
    assert final["status"] == "done" and final["label"] in ("Real", "Deepfake", "Uncertain", "No face")
    assert analysed_lines(stack.log("w1"), detection["id"]) == 1
    assert " succeeded in " not in stack.log("w1")  # one line per analysis: the detector's, not Celery's too
    assert "analysing" not in seen[seen.index("done") :]


def test_a_job_whose_worker_is_killed_finishes_on_another_worker_exactly_once(stack):
    hanging = stack.worker("hanging", app="tests.integration.hanging_worker")
    detection = stack.upload()
    marker = stack.tmp / "hanging.txt"
    stack.wait_for(lambda: marker.exists() and marker.read_text() == detection["id"], 60, "the job to start")
    assert stack.status(detection)["status"] == "analysing"

    os.killpg(hanging.pid, signal.SIGKILL)  # the whole worker, pool and all, mid-job: nothing is acknowledged
    hanging.wait(timeout=10)
    stack.worker("rescuer")
    final = stack.wait_for(
        lambda: (s := stack.status(detection))["status"] in ("done", "failed") and s, 60, "the job to come back"
    )
    assert final["status"] == "done"
    time.sleep(5)  # past another redelivery window: nothing runs it again
    assert analysed_lines(stack.log("rescuer"), detection["id"]) == 1
    assert analysed_lines(stack.log("hanging"), detection["id"]) == 0
    assert stack.status(detection)["status"] == "done"


def test_two_workers_share_a_burst_of_uploads_each_analysed_once(stack):
    stack.worker("w1")
    stack.worker("w2")
    detections = [stack.upload() for _ in range(8)]
    for detection in detections:
        stack.wait_for(lambda d=detection: stack.status(d)["status"] == "done", 90, "every verdict")
    logs = stack.log("w1") + stack.log("w2")
    assert all(analysed_lines(logs, d["id"]) == 1 for d in detections)


def test_a_running_worker_picks_up_the_version_activated_without_a_restart(stack, tmp_path):
    from tests.conftest import build_tiny_bundle

    folder = tmp_path / "versions"
    red = build_tiny_bundle(folder / "sees-red", version="1.0.0")
    build_tiny_bundle(folder / "sees-blue", version="2.0.0", kernel=(-0.05, 0.0, 0.05))
    stack.env.update(DETECTOR_MODEL_DIRS=str(folder), DETECTOR_MODEL=str(red))
    stack.worker("w1")

    def verdict(detection):
        return stack.wait_for(
            lambda: (s := stack.status(detection))["status"] in ("done", "failed") and s, 60, "the worker's verdict"
        )

    assert verdict(stack.upload())["model_version"] == "1.0.0"
    command = [sys.executable, "manage.py", "model_versions", "--activate", "sees-blue"]
    done = subprocess.run(command, cwd=ROOT, env=stack.env, capture_output=True, text=True, check=True)
    assert "activated sees-blue 2.0.0" in done.stdout
    assert verdict(stack.upload())["model_version"] == "2.0.0"  # the same worker process, not restarted
    assert "detector 2.0.0 loaded" in stack.log("w1") and "in place of 1.0.0" in stack.log("w1")
