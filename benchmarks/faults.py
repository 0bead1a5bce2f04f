"""``make faults``: the platform as it runs here, with its services failing one at a time, and what must hold.

gunicorn (2 workers, production settings) and a Celery worker talk to PostgreSQL and Redis through small TCP
proxies this script owns, so each dependency can be cut and restored; media live on a small tmpfs where the machine
allows mounting one. Each scenario sends real uploads (and page views with a session cookie), then checks:

- no 5xx but the documented 503s (a dependency down), and no upload answered 500 after it was stored;
- every accepted upload has its row and its three files, and ends ``done`` or ``failed`` once things recover
  (``cleanup_detections`` queues what was left pending, as beat's sweep does);
- nothing is left that no row knows (no orphan and no partial file), no row is lost;
- no detection analysed twice (the workers' one log line per analysis).

One line per scenario and a total. Loopback only; bounded in time (``--time-limit``). Not part of ``make test``.

    make faults                 # or: .venv/bin/python benchmarks/faults.py [--only NAME ...]

The slow-client scenario goes through nginx too where it is installed (Debian's nginx-light), unless
FAULTS_WITHOUT_NGINX is set.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from loopback import ROOT, app_env, gunicorn_command, prepare
from soak import payloads

PG, REDIS = ("127.0.0.1", 5432), ("127.0.0.1", 6379)
DOCUMENTED = {200, 201, 302, 400, 413, 415, 429, 503}


class Proxy:
    """A TCP proxy on 127.0.0.1 that can be cut (new connections refused, open ones dropped) and restored."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener = None
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self.up()

    def up(self):
        if self._listener:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self):
        listener, self._listener = self._listener, None
        if listener:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not, on Linux)
            except OSError:
                pass
            listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.add((client, server))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, a, b):
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in sel.select(timeout=1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._pairs.discard((a, b))
            for s in (a, b):
                s.close()


class Platform:
    """gunicorn and a Celery worker on a fresh PostgreSQL database, Redis as broker and cache, all via proxies."""

    def __init__(self, tmp: Path, port: int, media: Path):
        self.tmp, self.port, self.media = tmp, port, media
        self.db, self.broker, self.cache = Proxy(PG), Proxy(REDIS), Proxy(REDIS)
        self.name = f"faults_{os.getpid()}"
        self._psql(f"DROP DATABASE IF EXISTS {self.name}", f"CREATE DATABASE {self.name}")
        self.env = app_env(
            tmp,
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{self.db.port}/{self.name}",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{self.broker.port}/12",
            CACHE_URL=f"redis://127.0.0.1:{self.cache.port}/11",
            DJANGO_MEDIA_ROOT=str(media),
            DETECTOR_RATE_LIMIT="100000/h",  # counted in the cache, never reached
            DETECTOR_TASK_REDELIVER_AFTER="8",
            DETECTOR_TASK_RESTORE_INTERVAL="2",
            DETECTOR_MAX_UPLOAD_MB="1",
        )
        for name in ("broker", "cache"):
            url = self.env["CELERY_BROKER_URL" if name == "broker" else "CACHE_URL"]
            subprocess.run([sys.executable, "-c", f"import redis; redis.Redis.from_url('{url}').flushdb()"], check=True)
        prepare(self.env)
        self.web = self._start("web", gunicorn_command(port, 2, 60, "--log-level", "warning"))
        self.workers: list[subprocess.Popen] = []
        self.worker()
        self.base = f"http://127.0.0.1:{port}/"
        self.wait(lambda: self._get("readyz") == 200, 120, "the web server")

    def _psql(self, *statements):
        for statement in statements:
            subprocess.run(["psql", "-h", PG[0], "-U", "postgres", "-qc", statement], check=True, capture_output=True)

    def _start(self, name, cmd):
        log = open(self.tmp / f"{name}.log", "a")
        return subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def worker(self):
        n = len(self.workers)
        cmd = [sys.executable, "-m", "celery", "-A", "deepfake_site", "worker", "-n", f"w{n}@%h", "-c", "1"]
        cmd += ["--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"]
        self.workers.append(self._start(f"worker{n}", cmd))
        time.sleep(4)  # the worker loads the model before its first job

    def kill_worker(self):
        os.killpg(self.workers[-1].pid, signal.SIGKILL)
        self.workers[-1].wait(timeout=10)

    def worker_logs(self) -> str:
        return "".join(p.read_text() for p in self.tmp.glob("worker*.log"))

    def _get(self, path):
        return self._get_from(self.base, path)

    @staticmethod
    def _get_from(base, path):
        try:
            return requests.get(base + path, timeout=5).status_code
        except requests.RequestException:
            return None

    def wait(self, condition, seconds, what):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if condition():
                return
            time.sleep(0.3)
        raise TimeoutError(f"{what}: not within {seconds} s")

    def manage(self, *args, **env):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **env}, capture_output=True, text=True
        )

    def rows(self) -> dict:
        code = (
            "import json; from detector.models import Detection as D; "
            "print(json.dumps({str(d.pk): [d.status, d.image.name, d.preview.name, d.thumbnail.name] "
            "for d in D.objects.all()}))"
        )
        done = self.manage("shell", "-c", code)
        return __import__("json").loads(done.stdout.strip().splitlines()[-1])

    def stop(self):
        for process in [self.web, *self.workers]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        for proxy in (self.db, self.broker, self.cache):
            proxy.down()
        sessions = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'"
        self._psql(sessions, f"DROP DATABASE IF EXISTS {self.name}")


class Client:
    """A browser-like client: the form with its CSRF token and a session cookie, asking for JSON."""

    def __init__(self, base: str):
        self.base, self.session = base, requests.Session()
        page = self.session.get(base, timeout=30).text
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def upload(self, name: str, data: bytes) -> tuple[int | str, str | None]:
        try:
            r = self.session.post(
                self.base,
                data={"csrfmiddlewaretoken": self.token},
                files={"image": (name, data)},
                headers={"Accept": "application/json", "Referer": self.base},
                timeout=60,
            )
        except requests.RequestException as exc:
            return type(exc).__name__, None
        body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
        return r.status_code, body.get("id")

    def status(self, pk: str) -> str | None:
        try:
            return self.session.get(f"{self.base}detections/{pk}/status/", timeout=10).json()["status"]
        except (requests.RequestException, ValueError, KeyError):
            return None

    def delete(self, pk: str) -> int | str:
        """The owner deletes the check, as the page's form does."""
        try:
            r = self.session.post(
                f"{self.base}detections/{pk}/delete/",
                data={"csrfmiddlewaretoken": self.token},
                headers={"Referer": self.base},
                timeout=30,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return type(exc).__name__
        return r.status_code

    def page(self, path: str) -> int | str:
        try:
            return self.session.get(self.base + path, timeout=30).status_code
        except requests.RequestException as exc:
            return type(exc).__name__


def burst(platform: Platform, clients: list[Client], count: int, during=None) -> list:
    """``count`` uploads of good images (and page views) from the clients, with ``during`` running alongside."""
    good = [p for p in payloads() if p[3]]
    results = []
    stop = threading.Event()
    side = threading.Thread(target=during, args=(stop,), daemon=True) if during else None
    if side:
        side.start()

    def one(i):
        client = clients[i % len(clients)]
        kind, name, data, _ = good[i % len(good)]
        status, pk = client.upload(name, data)
        return {"status": status, "id": pk, "page": client.page("history/")}

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(one, range(count)))
    stop.set()
    if side:
        side.join(timeout=30)
    return results


def settle(platform: Platform, seconds: int = 90) -> dict:
    """Let the platform recover: queue what was left pending (cleanup, as the sweep does) until all is finished."""
    deadline = time.time() + seconds
    while True:
        platform.manage("cleanup_detections", "--grace-minutes", "0")
        rows = platform.rows()
        if all(r[0] in ("done", "failed") for r in rows.values()) or time.time() > deadline:
            return rows
        time.sleep(2)


def invariants(platform: Platform, results: list, rows: dict) -> list[str]:
    """What must hold after a scenario, as a list of what did not."""
    wrong = []
    statuses = Counter(r["status"] for r in results) + Counter(r["page"] for r in results)
    bad = {s: n for s, n in statuses.items() if isinstance(s, int) and s not in DOCUMENTED}
    if bad:
        wrong.append(f"undocumented statuses {bad}")
    for r in results:
        if r["status"] == 201 and r["id"] not in rows:
            wrong.append(f"accepted upload {r['id']} has no row")
    files = media_files(platform)
    known = {name for row in rows.values() for name in row[1:] if name}
    if known - files:
        wrong.append(f"{len(known - files)} file(s) of rows missing")
    if stray := stray_files(platform):
        wrong.append(f"{len(stray)} file(s) no row knows")
    unfinished = [pk for pk, row in rows.items() if row[0] not in ("done", "failed")]
    if unfinished:
        wrong.append(f"{len(unfinished)} detection(s) never finished")
    logs = platform.worker_logs()
    # Lines from a worker's pool process, in Celery's format (a copy of the line in another format is not an analysis).
    twice = [pk for pk in rows if len(re.findall(rf"/ForkPoolWorker-\d+\] detection {pk} analysed", logs)) > 1]
    if twice:
        wrong.append(f"{len(twice)} detection(s) analysed twice")
    return wrong


# -- scenarios ---------------------------------------------------------------------------------------------------


def baseline(platform, clients):
    return burst(platform, clients, 8), None


def broker_down(platform, clients):
    platform.broker.down()
    results = burst(platform, clients, 8)
    time.sleep(2)
    left = Counter(row[0] for pk, row in platform.rows().items() if pk in {r["id"] for r in results})
    platform.broker.up()
    return results, None if left.get("pending") == len(results) else f"uploads not left pending while down: {left}"


def cache_down(platform, clients):
    platform.cache.down()
    results = burst(platform, clients, 8)
    ready = requests.get(platform.base + "readyz", timeout=10).json()["checks"]
    platform.cache.up()
    return results, None if ready.get("cache") is False else "readyz did not report the cache down"


def database_flapping(platform, clients):
    def flap(stop):
        while not stop.is_set():
            platform.db.down()
            time.sleep(0.4)
            platform.db.up()
            time.sleep(0.6)

    results = burst(platform, clients, 24, during=flap)
    platform.db.up()
    return results, None


def killed_web_worker(platform, clients):
    killed = []

    def kill(stop):
        wait = 0.3
        while not stop.wait(wait):  # a worker SIGKILLed now and then every second, whatever it is doing
            wait = 1.0
            children = Path(f"/proc/{platform.web.pid}/task/{platform.web.pid}/children").read_text().split()
            if children:
                os.kill(int(children[0]), signal.SIGKILL)
                killed.append(children[0])

    results = burst(platform, clients, 30, during=kill)
    return results, None if killed else "no web worker was killed"


def killed_celery_worker(platform, clients):
    results = burst(platform, clients, 6)
    time.sleep(0.3)
    platform.kill_worker()  # mid-job: its job is redelivered once the window has passed
    platform.worker()
    return results, None


def media_read_only(platform, clients):
    subprocess.run(["mount", "-o", "remount,ro", str(platform.media)], check=True)
    try:
        results = burst(platform, clients, 6)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(platform.media)], check=True)
    refused = all(r["status"] == 503 for r in results)
    return results, None if refused else "uploads to read-only media were not all 503"


def disk_full(platform, clients):
    filler = platform.media / "fill"
    free = os.statvfs(platform.media)
    with open(filler, "wb") as f:  # leave about 150 KB: less than an upload and its copies need
        os.posix_fallocate(f.fileno(), 0, max(0, free.f_bavail * free.f_frsize - 150_000))
    try:
        results = burst(platform, clients, 6)
        left = stray_files(platform)  # at once, before any cleanup: a refused upload must leave nothing
    finally:
        filler.unlink()
    return results, f"refused uploads left {len(left)} file(s) behind" if left else None


def media_files(platform) -> set[str]:
    """The uploads and their copies in the media folder (not the readiness probe's, the face pictures or the filler)."""
    files = {p.relative_to(platform.media).as_posix() for p in platform.media.rglob("*") if p.is_file()}
    return {f for f in files if not f.startswith(("health/", "faces/", "fill"))}


def stray_files(platform) -> set[str]:
    """Files that no row knows: left by a refused or interrupted upload."""
    return media_files(platform) - {name for row in platform.rows().values() for name in row[1:] if name}


def unmounted_media_under_cleanup(platform, clients):
    results = burst(platform, clients, 4)
    settle(platform)
    before = len(platform.rows())
    empty = platform.tmp / "not-mounted"
    empty.mkdir(exist_ok=True)
    platform.manage("cleanup_detections", "--grace-minutes", "0", DJANGO_MEDIA_ROOT=str(empty))
    after = len(platform.rows())
    return results, None if after == before else f"cleanup with the media unmounted removed {before - after} row(s)"


def portrait_clip(seconds: int = 8, fps: int = 10) -> bytes:
    """An MP4 of a real face drifting across the frame: long enough for a worker to be deleted under."""
    import io

    import av
    import skimage.data
    from PIL import Image

    face = Image.fromarray(skimage.data.astronaut()).resize((300, 300))
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(seconds * fps):
            frame = Image.new("RGB", (640, 480), (90, 90, 90))
            frame.paste(face, (20 + 3 * i, 90))
            out.mux(stream.encode(av.VideoFrame.from_image(frame)))
        out.mux(stream.encode())
    return buf.getvalue()


def deleted_during_analysis(platform, clients):
    """The owner deletes each check while a worker analyses it (2 videos, 6 images): none may come back, and no file
    of it may stay (the stills a video's analysis wrote included)."""
    client = clients[0]
    images = [(name, data) for _, name, data, ok in payloads() if ok]
    uploads = [("clip.mp4", portrait_clip())] * 2 + (images * 2)[:6]
    results, deleted = [], []
    for name, data in uploads:
        status, pk = client.upload(name, data)
        if pk is None:
            results.append({"status": status, "id": None, "page": 200})
            continue
        seen, deadline = None, time.time() + 30
        while time.time() < deadline:  # until a worker has taken it (or, too quick to catch, finished it)
            seen = client.status(pk)
            if seen in ("analysing", "done", "failed"):
                break
            time.sleep(0.01)
        if seen == "analysing" and name.endswith(".mp4"):
            time.sleep(1.0)  # a few frames in: its stills are about to be written
        answer = client.delete(pk)
        deleted.append(pk)
        when = "mid-analysis" if seen == "analysing" else f"when {seen}"
        results.append({"status": f"{status} deleted {when}" if answer == 302 else answer, "id": pk, "page": 200})
    time.sleep(15)  # the videos' analyses finish (or find their row gone)
    back = [pk for pk in deleted if pk in platform.rows()]
    caught = sum("mid-analysis" in str(r["status"]) for r in results)
    if back:
        return results, f"{len(back)} deleted check(s) came back"
    return results, None if caught else "no deletion happened mid-analysis: the race was not tried"


def nginx_binary() -> str | None:
    import shutil

    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


class Nginx:
    """nginx on a free loopback port in front of the platform's gunicorn, with the site's configuration
    (``manage.py nginx_config``)."""

    def __init__(self, platform, binary: str):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        folder = platform.tmp / "nginx"
        folder.mkdir(exist_ok=True)
        site = platform.manage(
            "nginx_config", "--upstream", f"127.0.0.1:{platform.port}", "--listen", f"127.0.0.1:{self.port}"
        ).stdout
        (folder / "site.conf").write_text(site)
        (folder / "nginx.conf").write_text(
            f"daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log; events {{}}\n"
            f"http {{ access_log off; client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;\n"
            f"  include {folder}/site.conf; }}\n"
        )
        self.process = subprocess.Popen([binary, "-c", str(folder / "nginx.conf")], start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}/"
        platform.wait(lambda: platform._get_from(self.base, "healthz") == 200, 30, "nginx")

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)


def trickle(port: int, stop: threading.Event, length: int = 100_000) -> None:
    """A client that declares a 100 KB upload and sends it a byte a second, until ``stop``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            s.sendall((head + f"Content-Length: {length}\r\n\r\n").encode())
            while not stop.wait(1.0):
                s.sendall(b"x")
    except OSError:
        pass  # dropped by the server: that is allowed


def probe(client: Client, base: str) -> dict:
    """One /healthz and one normal upload, each timed (seconds): the row ``burst`` keeps, with the times."""
    started = time.perf_counter()
    health = Platform._get_from(base, "healthz")
    health_s = time.perf_counter() - started
    started = time.perf_counter()
    status, pk = client.upload("portrait.jpg", next(d for _, _, d, ok in payloads() if ok))
    upload_s = time.perf_counter() - started
    return {
        "status": status,
        "id": pk,
        "page": health,
        "seconds": max(health_s, upload_s),
        "healthz": health_s,
        "upload": upload_s,
    }


def slow_clients(platform, clients, connections: int = 4, seconds: int = 30):
    """Clients that send a 100 KB body a byte a second for 30 s: /healthz and a normal upload must still answer
    within 1 s throughout, against gunicorn alone and, where nginx is installed, through it."""
    fronts = [("gunicorn", platform.base, platform.port, clients[0], None)]
    binary = None if os.environ.get("FAULTS_WITHOUT_NGINX") else nginx_binary()
    if binary:
        nginx = Nginx(platform, binary)
        fronts.append(("nginx", nginx.base, nginx.port, Client(nginx.base), nginx))
    results, slowest = [], {}
    try:
        for name, base, port, client, _ in fronts:
            stop = threading.Event()
            trickles = [threading.Thread(target=trickle, args=(port, stop), daemon=True) for _ in range(connections)]
            for t in trickles:
                t.start()
            time.sleep(2)  # the slow requests are in
            rounds, deadline = [], time.time() + seconds
            began = time.time()
            while time.time() < deadline:
                rounds.append(probe(client, base) | {"at": round(time.time() - began, 1)})
                time.sleep(1)
            stop.set()
            for t in trickles:
                t.join(timeout=5)
            slowest[name] = max(r["seconds"] for r in rounds)
            print(
                f"  {name}: /healthz median {statistics.median(r['healthz'] for r in rounds):.3f} s, "
                f"max {max(r['healthz'] for r in rounds):.3f} s; upload median "
                f"{statistics.median(r['upload'] for r in rounds):.3f} s, max {max(r['upload'] for r in rounds):.3f} s",
                flush=True,
            )
            for r in rounds:
                if r["seconds"] > 1.0:
                    print(f"    {name} at {r['at']} s: /healthz {r['healthz']:.3f} s, upload {r['upload']:.3f} s")
            results += rounds
    finally:
        for *_, nginx in fronts:
            if nginx:
                nginx.stop()
    said = ", ".join(f"{k} {v:.2f} s" for k, v in slowest.items()) + ("" if binary else " (no nginx installed)")
    print(f"  slowest answer beside {connections} slow clients: {said}", flush=True)
    late = {k: round(v, 2) for k, v in slowest.items() if v > 1.0}
    failed = [r for r in results if r["status"] != 201 or r["page"] != 200]
    if late or failed:
        return results, f"answers took over 1 s: {late}" if late else f"{len(failed)} probe(s) not answered"
    return results, None


SCENARIOS = {
    "baseline": baseline,
    "broker down": broker_down,
    "cache down": cache_down,
    "database flapping": database_flapping,
    "killed web worker": killed_web_worker,
    "killed Celery worker mid-job": killed_celery_worker,
    "media read-only": media_read_only,
    "disk full": disk_full,
    "unmounted media under cleanup": unmounted_media_under_cleanup,
    "slow clients": slow_clients,
    "deleted during analysis": deleted_during_analysis,
}
NEEDS_MOUNT = {"media read-only", "disk full"}


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="these scenarios only")
    p.add_argument("--port", type=int, default=8797)
    p.add_argument("--time-limit", type=int, default=900, help="seconds for the whole run")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="faults-"))
    media = tmp / "media"
    mounted = mount_tmpfs(media, "64m")
    platform = Platform(tmp, args.port, media)
    started, failed, lines = time.time(), 0, []
    try:
        clients = [Client(platform.base) for _ in range(3)]
        for name in args.only or SCENARIOS:
            if time.time() - started > args.time_limit:
                lines.append(f"{name:32s} SKIPPED: past the time limit")
                continue
            if name in NEEDS_MOUNT and not mounted:
                lines.append(f"{name:32s} SKIPPED: no tmpfs can be mounted here")
                continue
            try:
                results, problem = SCENARIOS[name](platform, clients)
                rows = settle(platform)
                wrong = invariants(platform, results, rows) + ([problem] if problem else [])
            except Exception as exc:  # a scenario that breaks the run is a failure, not a crash of the suite
                results, wrong = [], [f"{type(exc).__name__}: {exc}"]
            statuses = dict(sorted(Counter(str(r["status"]) for r in results).items()))
            verdict = "ok" if not wrong else "FAILED: " + "; ".join(wrong)
            failed += bool(wrong)
            lines.append(f"{name:32s} uploads {statuses}  {verdict}")
            print(lines[-1], flush=True)
    finally:
        platform.stop()
        if mounted:
            subprocess.run(["umount", str(media)])
    print()
    print("\n".join(lines))
    print(f"faults: {len(lines) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
