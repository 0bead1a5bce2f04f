"""``make bench``, upload and http: the CPU of one upload, and N clients uploading to gunicorn beside the seed's
Flask app."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from bench_common import CLIENTS, CORES, phone_jpeg, upload_jpeg
from loopback import ROOT, app_env, gunicorn_command, prepare


def peak_rss_mb(master: int) -> list[float]:
    """VmHWM of each worker (the master's children), in MB."""
    children = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += (task / "children").read_text().split()
    peaks = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024)
    return sorted(peaks)


class Client:
    """Uploads to our app through the form (CSRF and all), asking for JSON; a success is a stored verdict."""

    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()
        page = self.session.get(base, timeout=30).text
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def post(self, data: bytes) -> requests.Response:
        return self.session.post(
            self.base,
            data={"csrfmiddlewaretoken": self.token},
            files={"image": ("photo.jpg", data, "image/jpeg")},
            headers={"Accept": "application/json", "Referer": self.base},
            timeout=120,
        )

    def upload(self, data: bytes) -> bool:
        r = self.post(data)
        ok = r.status_code == 201 and r.json().get("status") == "done"
        if ok:
            self.last_url = r.json()["url"]
        return ok

    def upload_queued(self, data: bytes) -> bool:
        """Upload with workers behind the app: a success is a stored, queued detection."""
        r = self.post(data)
        if r.status_code != 201:
            raise SystemExit(f"upload refused: {r.status_code} {r.text[:200]}")
        return True

    def heatmap(self) -> bool:
        """The first face's heatmap of the last upload (drawn on first view)."""
        return self.session.get(self.base.rstrip("/") + self.last_url + "faces/1/heatmap.png", timeout=60).ok


class SeedClient:
    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()

    def upload(self, data: bytes) -> bool:
        r = self.session.post(self.base + "predict", files={"image": ("photo.jpg", data, "image/jpeg")}, timeout=120)
        return r.status_code == 200


def load(make_client, data: bytes, clients: int, requests_total: int) -> dict:
    """``clients`` threads share ``requests_total`` uploads; throughput, latency percentiles and errors."""
    sessions = [make_client() for _ in range(clients)]
    latencies, errors, lock = [], [], threading.Lock()
    remaining = iter(range(requests_total))

    def worker(client):
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            t = time.perf_counter()
            try:
                ok = client.upload(data)
            except requests.RequestException as exc:
                ok = False
                errors.append(str(exc))
            with lock:
                latencies.append((time.perf_counter() - t) * 1000)
                if not ok:
                    errors.append("failed")

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "errors": len(errors),
    }


def serve_and_load(name: str, cmd: list[str], env: dict, base: str, make_client, data: bytes, runs: int) -> dict:
    """Start a server, time its first verdict, run the load at each N ``runs`` times, read its workers' RSS."""
    started = time.perf_counter()
    log = open(Path(env["BENCH_TMP"]) / f"{name}.log", "w")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                if make_client().upload(data):
                    break
            except (requests.RequestException, AttributeError):
                pass
            if time.perf_counter() - started > 180 or server.poll() is not None:
                raise SystemExit(f"{name} gave no verdict within 180 s; see {log.name}")
            time.sleep(0.1)
        cold_start = time.perf_counter() - started
        result = {"cold_start_s": round(cold_start, 2), "clients": {}}
        for n in CLIENTS:
            load(make_client, data, n, 2 * n)  # warm every worker
            per_run = [load(make_client, data, n, max(40, 12 * n)) for _ in range(runs)]
            result["clients"][str(n)] = {
                key: round(statistics.median(r[key] for r in per_run), 1)
                for key in ("requests_per_s", "p50_ms", "p95_ms")
            } | {"errors": sum(r["errors"] for r in per_run), "requests": sum(r["requests"] for r in per_run)}
            print(f"{name} N={n}: {result['clients'][str(n)]}", flush=True)
        if hasattr(make_client(), "heatmap"):  # explanations count towards a worker's memory too
            for _ in range(4 * CORES):
                client = make_client()
                assert client.upload(data) and client.heatmap(), "heatmap not served"
        result["peak_rss_mb_per_worker"] = [round(x) for x in peak_rss_mb(server.pid)]
        return result
    finally:
        server.terminate()
        server.wait(timeout=60)


def http(runs: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    data = upload_jpeg()
    out: dict = {"upload_bytes": len(data), "workers": CORES}

    env = app_env(tmp, DETECTOR_RATE_LIMIT="", BENCH_TMP=str(tmp))
    prepare(env)
    port = 8871
    base = f"http://127.0.0.1:{port}/"
    cmd = gunicorn_command(port, CORES, 120, "--log-level", "warning")
    out["ours"] = serve_and_load("ours", cmd, env, base, lambda: Client(base), data, runs)

    seed_port = 8872
    seed_base = f"http://127.0.0.1:{seed_port}/"
    seed_env = {**os.environ, "SEED_UPLOAD_DIR": str(tmp), "BENCH_TMP": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "2"}
    seed_cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--chdir",
        str(ROOT / "benchmarks"),
        "seed_app:app",
        "-b",
        f"127.0.0.1:{seed_port}",
        "-w",
        str(CORES),
        "--timeout",
        "120",
        "--log-level",
        "warning",
    ]
    out["seed"] = serve_and_load("seed", seed_cmd, seed_env, seed_base, lambda: SeedClient(seed_base), data, runs)
    out["ratio_requests_per_s"] = {
        n: round(out["ours"]["clients"][n]["requests_per_s"] / out["seed"]["clients"][n]["requests_per_s"], 1)
        for n in out["ours"]["clients"]
    }
    return out


def upload_cpu(runs: int) -> dict:
    """The CPU of one upload split into its parts (``upload_cpu.py``), for the bench photo and a 12 MP one."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    photos = {"bench photo": upload_jpeg(), "12 MP photo": phone_jpeg()}
    paths = {}
    for name, data in photos.items():
        paths[name] = str(tmp / f"{name.replace(' ', '-')}.jpg")
        Path(paths[name]).write_bytes(data)
    env = app_env(tmp, DETECTOR_RATE_LIMIT="", DETECTOR_THREADS="2")
    prepare(env)
    per_run = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "upload_cpu.py"), json.dumps(paths)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        per_run.append(json.loads(done.stdout.strip().splitlines()[-1]))
    out = {"bytes": {name: len(data) for name, data in photos.items()}, "photos": {}}
    for name in photos:
        runs_of = [r[name] for r in per_run]
        out["photos"][name] = {
            k: (
                round(statistics.median(r[k] for r in runs_of), 1)
                if isinstance(runs_of[0][k], float)
                else runs_of[0][k]
            )
            for k in runs_of[0]
        }
    bench, phone = out["photos"]["bench photo"]["total"], out["photos"]["12 MP photo"]["total"]
    out["ratio_12mp_to_bench"] = round(phone / bench, 2)
    print(f"upload CPU: {out}", flush=True)
    return out
