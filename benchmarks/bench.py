"""``make bench``: how fast the detector and the platform answer, beside the seed's way of serving.

Writes ``benchmarks/results/latest.json`` and ``latest.md``:

- the classifier per face at batch 1 and 8, for each engine (LiteRT with 1 and 2
  threads, the Keras model behind ``tf.function``, and Keras ``model.predict``);
- face detection on a 1024x768 photo;
- the whole analysis (decode, faces, classify) of a 1 MP photo with 0, 1 and 4 faces;
- HTTP end to end: N concurrent clients upload a ~1 MB JPEG to the app under
  gunicorn on 127.0.0.1 (workers = cores) until the verdict is stored, for
  N = 1, 4, 16; and the same for the seed's Flask app (``seed_app.py``);
- peak RSS per server worker, and the seconds from process start to the first verdict;
- a video's whole analysis: a 30-second 720p H.264 clip (and a 2-minute one, for memory), with 1.4.0's single
  model and with the shipped default (``video_cost.py``, a process per model).

Every figure is the median over several runs (``--runs``).  Loopback only; nothing is downloaded.

    make bench                      # or: .venv/bin/python benchmarks/bench.py [--runs 3] [--only micro|http]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests
from loopback import ROOT, app_env, gunicorn_command, prepare
from PIL import Image, ImageFilter

sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
BUNDLE = ROOT / "ml_models" / "ensemble-v1"
SHARED_FACES = ROOT.parent / "shared" / "datasets" / "faces"
CORES = os.cpu_count() or 1
CLIENTS = (1, 4, 16)


# -- test images -----------------------------------------------------------------------------------------------


def _skimage(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def scene(faces: int, size: tuple[int, int]) -> Image.Image:
    """A photo-like scene of ``size`` with 0, 1 or 4 portraits (scikit-image's astronaut) on a real background."""
    canvas = _skimage("coffee").resize(size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    w, h = size
    if faces == 1:
        side = h
        canvas.paste(_skimage("astronaut").resize((side, side), Image.BICUBIC), ((w - side) // 2, 0))
    elif faces == 4:
        side = h // 2
        head = _skimage("astronaut").crop((110, 0, 330, 220))  # the face fills a group-photo tile
        portrait = head.resize((side, side), Image.BICUBIC)
        for i, (x, y) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
            tile = portrait.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else portrait
            canvas.paste(tile, (w // 2 - side + x * side, y * side))
    return canvas


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def upload_jpeg(target: int = 1_000_000) -> bytes:
    """A one-face photo of about ``target`` bytes (the camera-like noise is what makes real photos large)."""
    rng = np.random.default_rng(0)
    image = np.asarray(scene(1, (1600, 1200)), dtype=np.float32)
    noisy = Image.fromarray(np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8))
    for quality in range(80, 100):
        data = jpeg(noisy, quality)
        if len(data) >= target * 0.9:
            return data
    return data


def phone_jpeg(target: int = 4_000_000) -> bytes:
    """A 12 MP (4000x3000) one-face photo of about ``target`` bytes, as a phone saves it."""
    rng = np.random.default_rng(1)
    image = np.asarray(scene(1, (4000, 3000)), dtype=np.float32)
    noisy = Image.fromarray(np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8))
    for quality in range(70, 100, 2):
        data = jpeg(noisy, quality)
        if len(data) >= target * 0.9:
            return data
    return data


# -- timing ----------------------------------------------------------------------------------------------------


def timed(fn, runs: int, calls: int = 20, per: int = 1) -> dict:
    """Median and p95 in ms (divided by ``per``): the median over ``runs`` rounds of ``calls`` calls each."""
    for _ in range(3):
        fn()
    medians, p95s = [], []
    for _ in range(runs):
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000 / per)
        times.sort()
        medians.append(statistics.median(times))
        p95s.append(times[min(len(times) - 1, int(0.95 * len(times)))])
    return {"median_ms": round(statistics.median(medians), 2), "p95_ms": round(statistics.median(p95s), 2)}


def micro(runs: int) -> dict:
    """Classifier, face detection and whole analysis, in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from detector.ml.inference.bundle import member_path, read_metadata
    from detector.ml.inference.engines import KerasEngine, LiteRTEngine
    from detector.ml.inference.predictor import Detector
    from detector.ml.inference.preprocessing import SERVING_DECODE_SIDE, FaceFinder, decode

    rng = np.random.default_rng(0)
    out: dict = {"classifier": {}, "face_detection": {}, "analysis": {}}

    # every network of the default: the bundle itself, or each member of an ensemble
    default = read_metadata(BUNDLE)
    for network in [member_path(BUNDLE, m) for m in default.members] or [BUNDLE]:
        detector = Detector(network, engine="keras")
        size = detector.meta.input_size
        crops = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
        tflite = network / detector.meta.engines["litert"]["file"]
        engines = {
            "LiteRT, 2 threads": LiteRTEngine(tflite, 2),
            "LiteRT, 1 thread": LiteRTEngine(tflite, 1),
            "Keras tf.function": KerasEngine(detector.model, size),
            "Keras model.predict": None,
        }
        for name, engine in engines.items():
            row = {}
            for batch in (1, 8):
                x = crops[:batch]
                if engine is None:
                    call = lambda x=x, d=detector: d.model.predict(x.astype(np.float32), verbose=0)  # noqa: E731
                else:
                    call = lambda x=x, e=engine: e.logits(x)  # noqa: E731
                row[f"batch_{batch}"] = timed(call, runs, calls=10 if batch == 8 else 20, per=batch)
            key = name if network == BUNDLE else f"{network.name} ({size} px), {name}"
            out["classifier"][key] = row
            print(f"classifier {key}: {row}", flush=True)

    photo = scene(1, (1024, 768))
    for threads in (1, 2):
        finder = FaceFinder(num_threads=threads)
        found = len(finder(photo))
        out["face_detection"][f"{threads} thread{'s' if threads > 1 else ''}"] = {
            **timed(lambda f=finder: f(photo), runs),
            "faces_found": found,
        }
    print(f"face detection (1024x768): {out['face_detection']}", flush=True)

    for threads in (1, 2):
        served = Detector(BUNDLE, num_threads=threads)
        row = {}
        for faces in (0, 1, 4):
            data = jpeg(scene(faces, (1280, 800)))
            verdict = served.judge(decode(data, min_side=SERVING_DECODE_SIDE))
            found = len(verdict.faces) if verdict.face_found else 0
            run = lambda d=data, s=served: s.judge(decode(d, min_side=SERVING_DECODE_SIDE))  # noqa: E731
            row[f"{faces}_faces"] = {**timed(run, runs), "faces_found": found}
        engines = sorted({d.engine.name for d in served.members or [served]})
        out["analysis"][f"{threads} thread{'s' if threads > 1 else ''} ({', '.join(engines)})"] = row
        print(f"whole analysis, 1280x800 JPEG, {threads} threads: {row}", flush=True)
    out["evaluation"] = evaluation_speed(runs)
    return out


def evaluation_speed(runs: int, images: int = 800) -> dict | None:
    """Images per second of the evaluation path (decode, faces, batched classification) on val images."""
    from detector.ml.inference.predictor import Detector
    from detector.ml.measurement.dataset import read_manifest
    from detector.ml.measurement.evaluation import score_samples

    if not (SHARED_FACES / "manifest.csv").is_file():
        print(f"evaluation speed skipped: no dataset at {SHARED_FACES}", flush=True)
        return None
    samples = read_manifest(SHARED_FACES, "val")
    samples = samples[:: max(1, len(samples) // images)][:images]
    out = {"images": len(samples)}
    for threads in (1, 2):
        detector = Detector(BUNDLE, num_threads=threads)
        rates = []
        for _ in range(runs):
            started = time.perf_counter()
            score_samples(detector, samples, progress=False)
            rates.append(len(samples) / (time.perf_counter() - started))
        out[f"{threads} thread{'s' if threads > 1 else ''}"] = round(statistics.median(rates), 1)
    print(f"evaluation: {out}", flush=True)
    return out


# -- HTTP ------------------------------------------------------------------------------------------------------


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


# -- video: a 30-second 720p clip ---------------------------------------------------------------------------

V1_4 = ROOT / "ml_models" / "faces-effnetlite0-v1"


def video_clip(path: Path, seconds: int, fps: int = 30, size: tuple[int, int] = (1280, 720)) -> None:
    """An H.264 clip of a portrait (scikit-image's astronaut) drifting over a real background, with a cut
    half-way to a second shot of the face, larger; x264's defaults (a keyframe at most every 250 frames)."""
    import av

    background = _skimage("coffee").resize(size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    face = _skimage("astronaut").crop((60, 0, 400, 340))
    shots = [face.resize((300, 300), Image.BICUBIC), face.resize((420, 420), Image.BICUBIC)]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        frames = seconds * fps
        for k in range(frames):
            shot = shots[0] if k < frames // 2 else shots[1]
            frame = background.copy()
            x = 100 + int(600 * k / frames)
            frame.paste(shot, (x, 120 if shot is shots[0] else 60))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def video_cost(runs: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clips = {"30 s 720p": (tmp / "30s.mp4", 30), "2 min 720p": (tmp / "120s.mp4", 120)}
    out = {"clips": {}, "models": {}}
    for name, (path, seconds) in clips.items():
        started = time.perf_counter()
        video_clip(path, seconds)
        out["clips"][name] = {"bytes": path.stat().st_size, "made_in_s": round(time.perf_counter() - started, 1)}
    for bundle in (V1_4, BUNDLE):
        rows = {}
        for name, (path, _) in clips.items():
            done = subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "video_cost.py"), str(bundle), str(path)]
                + ["--runs", str(runs if name.startswith("30") else 1), "--threads", str(CORES)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        out["models"][bundle.name] = rows
    print(f"video: {out}", flush=True)
    return out


# -- queue: web process + Celery workers on Redis ------------------------------------------------------------


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


# -- report ----------------------------------------------------------------------------------------------------


def video_markdown(v: dict) -> list[str]:
    lines = [
        "",
        "## A video's whole analysis (probe, 2 frames a second sampled and decoded, faces, tracks, scores, heatmaps)",
        "",
        "Generated H.264 clips, 1280x720 at 30 frames a second, one face per frame and a cut half-way "
        + ", ".join(f"({name}: {c['bytes'] / 1e6:.1f} MB)" for name, c in v["clips"].items())
        + "; a process per model, on the cores above.",
        "",
        "| model | clip | frames looked at | tracks | wall time | of which decoding | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for bundle, rows in v["models"].items():
        for clip, row in rows.items():
            lines.append(
                f"| {row['model']} ({bundle}) | {clip} | {row['frames_sampled']} | {row['tracks']} | "
                f"{row['seconds']} s | {row['decode_seconds']} s | {row['peak_rss_mb']} MB |"
            )
    return lines


def markdown(r: dict) -> str:
    lines = [
        f"# Benchmark results ({r['when']})",
        "",
        f"Machine: {r['machine']}, {r['cores']} cores; {r['python']}; model {r['model']}; "
        f"each figure the median of {r['runs']} runs. Made by `make bench`.",
        "",
    ]
    if "micro" in r:
        m = r["micro"]
        lines += [
            "## Classifier, per face (224 px)",
            "",
            "| engine | batch 1 median | batch 1 p95 | batch 8 median | batch 8 p95 |",
        ]
        lines += ["|---|---|---|---|---|"]
        for name, row in m["classifier"].items():
            b1, b8 = row["batch_1"], row["batch_8"]
            lines.append(
                f"| {name} | {b1['median_ms']} ms | {b1['p95_ms']} ms | {b8['median_ms']} ms | {b8['p95_ms']} ms |"
            )
        lines += ["", "## Face detection, 1024x768 photo (BlazeFace short + full range, LiteRT)", ""]
        lines += ["| threads | median | p95 | faces found |", "|---|---|---|---|"]
        for name, row in m["face_detection"].items():
            lines.append(f"| {name} | {row['median_ms']} ms | {row['p95_ms']} ms | {row['faces_found']} |")
        lines += ["", "## Whole analysis of a 1280x800 (1 MP) JPEG: decode, faces, classify", ""]
        lines += ["| configuration | 0 faces | 1 face | 4 faces |", "|---|---|---|---|"]
        for name, row in m["analysis"].items():
            cells = [f"{c['median_ms']} ms (p95 {c['p95_ms']}, found {c['faces_found']})" for c in row.values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if m.get("evaluation"):
            e = m["evaluation"]
            lines += [
                "",
                f"## Dataset evaluation (`evaluate_detector`'s path), {e['images']} val images",
                "",
                "| engine threads | images/s |",
                "|---|---|",
            ]
            lines += [f"| {k} | {v} |" for k, v in e.items() if k != "images"]
    if "upload" in r:
        u = r["upload"]
        names = list(u["photos"])
        keys = [k for k in u["photos"][names[0]] if k not in ("faces_found", "decoded_at")]
        lines += [
            "",
            "## CPU of one upload, split into its parts (in-process, the upload form, SQLite, 2 threads)",
            "",
            "| part | " + " | ".join(f"{n} ({u['bytes'][n] / 1e6:.2f} MB)" for n in names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        lines += [f"| {k} | " + " | ".join(f"{u['photos'][n][k]} ms" for n in names) + " |" for k in keys]
        lines += [
            "| decoded at | " + " | ".join("x".join(map(str, u["photos"][n]["decoded_at"])) for n in names) + " |",
            "",
            f"The 12 MP photo's upload costs {u['ratio_12mp_to_bench']}x the bench photo's.",
        ]
    if "http" in r:
        h = r["http"]
        lines += [
            "",
            f"## HTTP end to end: upload a {h['upload_bytes'] / 1e6:.2f} MB JPEG until the verdict is stored",
            "",
            f"gunicorn on 127.0.0.1, {h['workers']} sync workers each. Ours: the upload form, SQLite, rate limit off. "
            "Seed: Flask, MobileNetV2 224 px + dense head, `model.predict` per request, one shared upload path.",
            "",
            "| N clients | ours req/s | ours p50 | ours p95 | ours errors "
            "| seed req/s | seed p50 | seed p95 | seed errors | ratio |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, ours in h["ours"]["clients"].items():
            seed = h["seed"]["clients"][n]
            lines.append(
                f"| {n} | {ours['requests_per_s']} | {ours['p50_ms']:.0f} ms | {ours['p95_ms']:.0f} ms | "
                f"{ours['errors']}/{ours['requests']} | {seed['requests_per_s']} | {seed['p50_ms']:.0f} ms | "
                f"{seed['p95_ms']:.0f} ms | {seed['errors']}/{seed['requests']} | {h['ratio_requests_per_s'][n]}x |"
            )
        lines += [
            "",
            "| server | peak RSS per worker (ours: after heatmaps too) | cold start to first verdict |",
            "|---|---|---|",
        ]
        for name in ("ours", "seed"):
            rss = ", ".join(f"{x} MB" for x in h[name]["peak_rss_mb_per_worker"])
            lines.append(f"| {name} | {rss} | {h[name]['cold_start_s']} s |")
    if r.get("queue", {}).get("workers"):
        q = r["queue"]
        lines += [
            "",
            f"## Queue: 1 web process (gunicorn) + Celery worker processes on Redis, {q['database']}",
            "",
            f"{q['clients']} clients upload {q['uploads']} of the same JPEG. End to end: uploads and analyses at "
            "once, until every verdict is stored (web process, workers, PostgreSQL and the clients share the 2 "
            "cores). Workers alone: the uploads queued first, then only the workers run until the queue is empty.",
            "",
            "| worker processes | end to end, verdicts/s | workers alone, verdicts/s |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {v['verdicts_per_s']} | {v['queue_drained_per_s']} |" for k, v in q["workers"].items()]
        lines += [
            "",
            f"Scaling from 1 to 2 worker processes: {q['scaling_1_to_2_verdicts_per_s']}x end to end, "
            f"{q['scaling_1_to_2_queue_drained_per_s']}x for the workers alone (2 cores: 2x is the ceiling).",
        ]
    if "video" in r:
        lines += video_markdown(r["video"])
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    """The processor's name as the kernel reports it, with the architecture."""
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or 'unknown CPU'} ({platform.machine()})"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs per figure (the median is reported)")
    p.add_argument(
        "--only",
        choices=("micro", "upload", "http", "queue", "video"),
        help="one section only (the other sections of latest.json are kept)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and latest.md")
    args = p.parse_args()
    meta = json.loads((BUNDLE / "metadata.json").read_text())
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": cpu_model(),
        "cores": CORES,
        "python": f"Python {platform.python_version()}",
        "model": meta["version"],
        "runs": args.runs,
    }
    if args.only in (None, "micro"):
        result["micro"] = micro(args.runs)
    if args.only in (None, "upload"):
        result["upload"] = upload_cpu(args.runs)
    if args.only in (None, "http"):
        result["http"] = http(args.runs)
    if args.only in (None, "queue"):
        result["queue"] = queue(args.runs)
    if args.only in (None, "video"):
        result["video"] = video_cost(args.runs)
    if args.only and (args.out / "latest.json").is_file():  # one section measured again: keep the others
        kept = json.loads((args.out / "latest.json").read_text())
        result = {**kept, **{k: v for k, v in result.items() if k not in ("when", "runs")}}
        result.setdefault("sections_when", {})[args.only] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "latest.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
