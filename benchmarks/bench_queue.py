"""``make bench``, queue: the web process and Celery workers on Redis, uploads in and verdicts out."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from bench_common import upload_jpeg
from bench_http import Client
from loopback import ROOT, app_env, gunicorn_command, prepare

QUEUE_REDIS = "redis://127.0.0.1:6379/13"


PG_URL = "postgres://postgres@127.0.0.1:5432/test"


def queue_database(tmp: Path) -> tuple[str, object]:
    """A fresh database for web and workers (PostgreSQL where it answers, else SQLite) and a status counter."""
    try:
        import psycopg

        name = f"bench_{os.getpid()}"
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"

        def counts():
            with psycopg.connect(url) as conn:
                return dict(conn.execute("SELECT status, count(*) FROM detector_detection GROUP BY status").fetchall())

        return url, counts
    except Exception:
        import sqlite3

        path = tmp / "queue.sqlite3"

        def counts():
            with sqlite3.connect(path) as conn:
                return dict(conn.execute("SELECT status, count(*) FROM detector_detection GROUP BY status").fetchall())

        return f"sqlite:///{path}", counts


def queue(runs: int, uploads: int = 48, clients: int = 4) -> dict:
    """Verdicts per second with 1 web process and 1 or 2 Celery worker processes on Redis."""
    import redis

    try:
        broker = redis.Redis.from_url(QUEUE_REDIS, socket_connect_timeout=2)
        broker.ping()
    except redis.RedisError:
        print(f"queue benchmark skipped: no Redis at {QUEUE_REDIS}", flush=True)
        return {"skipped": f"no Redis at {QUEUE_REDIS}"}
    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    database_url, counts = queue_database(tmp)
    env = app_env(
        tmp, DETECTOR_RATE_LIMIT="", CELERY_BROKER_URL=QUEUE_REDIS, DATABASE_URL=database_url, BENCH_TMP=str(tmp)
    )
    prepare(env)
    data = upload_jpeg()
    port = 8873
    base = f"http://127.0.0.1:{port}/"
    web = subprocess.Popen(
        gunicorn_command(port, 1, 120, "--log-level", "warning"),
        cwd=ROOT,
        env=env,
        stdout=open(tmp / "web.log", "w"),
        stderr=subprocess.STDOUT,
    )
    out: dict = {"uploads": uploads, "clients": clients, "database": database_url.split(":")[0], "workers": {}}

    def start_workers(n: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "deepfake_site", "worker", "-c", str(n), "-l", "WARNING"],
            cwd=ROOT,
            env=env,
            stdout=open(tmp / f"worker-{n}.log", "a"),
            stderr=subprocess.STDOUT,
        )

    def stop(process: subprocess.Popen) -> None:
        process.terminate()
        process.wait(timeout=60)

    def burst() -> None:
        """``clients`` threads upload ``uploads`` images between them."""
        sessions = [Client(base) for _ in range(clients)]
        threads = [
            threading.Thread(target=lambda c=c: [c.upload_queued(data) for _ in range(uploads // clients)])
            for c in sessions
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def unfinished() -> int:
        c = counts()
        return c.get("pending", 0) + c.get("analysing", 0)

    try:
        for workers in (1, 2):
            broker.flushdb()
            worker = start_workers(workers)
            try:
                wait_until(lambda: Client(base).upload_queued(data), 120, "the web process")
                wait_until(lambda: unfinished() == 0, 120, "warm-up")
                end_to_end = []
                for _ in range(runs):  # uploads and analyses at once, as in use
                    started = time.perf_counter()
                    burst()
                    wait_until(lambda: unfinished() == 0, 300, "the verdicts")
                    end_to_end.append(uploads / (time.perf_counter() - started))
            finally:
                stop(worker)
            drain = []
            for _ in range(runs):  # the workers alone: a full queue, then only the workers run
                done_before = counts().get("done", 0)
                burst()
                worker = start_workers(workers)
                try:
                    wait_until(lambda b=done_before: counts().get("done", 0) > b, 120, "the first verdict")
                    started, left = time.perf_counter(), unfinished()
                    wait_until(lambda: unfinished() == 0, 300, "the queue to drain")
                    drain.append(left / (time.perf_counter() - started))
                finally:
                    stop(worker)
            out["workers"][str(workers)] = {
                "verdicts_per_s": round(statistics.median(end_to_end), 1),
                "queue_drained_per_s": round(statistics.median(drain), 1),
            }
            print(f"queue, {workers} worker process(es): {out['workers'][str(workers)]}", flush=True)
        for key in ("verdicts_per_s", "queue_drained_per_s"):
            one, two = (out["workers"][k][key] for k in ("1", "2"))
            out[f"scaling_1_to_2_{key}"] = round(two / one, 2)
        return out
    finally:
        web.terminate()
        web.wait(timeout=60)


def wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (requests.RequestException, AttributeError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out after {seconds} s waiting for {what}")
