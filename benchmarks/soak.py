"""Soak: 8 clients send 1,000 mixed uploads to gunicorn on 127.0.0.1, then every invariant is checked.

Valid JPEG/PNG/WebP portraits are mixed with text, truncated JPEGs, SVG, PNG+HTML
polyglots, oversize files and decompression bombs.  Afterwards: no 5xx, every
accepted upload has exactly one row and its files, every rejection none, no
orphan files.  Loopback only, bounded in count and time.

    make soak            # or: .venv/bin/python benchmarks/soak.py --requests 1000 --clients 8
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from loopback import ROOT, app_env, gunicorn_command, prepare
from PIL import Image

MAX_UPLOAD_MB = 1


def payloads() -> list[tuple[str, str, bytes, bool]]:
    """(kind, file name, bytes, should be accepted)."""
    import skimage.data

    face = Image.fromarray(skimage.data.astronaut())

    def encode(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    jpeg = encode(face.resize((640, 640)), "JPEG", quality=88)
    bomb = Image.new("1", (10_000, 10_000))
    noise = Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))
    return [
        ("jpeg", "portrait.jpg", jpeg, True),
        ("png", "portrait.png", encode(face.resize((320, 320)), "PNG"), True),
        ("webp", "portrait.webp", encode(face.resize((480, 480)), "WEBP", quality=85), True),
        ("jpeg-large", "large.jpg", encode(face.resize((1024, 1024)), "JPEG", quality=90), True),
        ("text", "notes.jpg", b"definitely not an image\n" * 20, False),
        ("truncated", "cut.jpg", jpeg[: len(jpeg) // 2], False),
        ("svg", "logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', False),
        ("polyglot", "x.png", encode(face.resize((64, 64)), "PNG") + b"<html><script>alert(1)</script></html>", False),
        ("oversize", "huge.png", encode(noise, "PNG"), False),
        ("bomb", "bomb.png", encode(bomb, "PNG"), False),
    ]


def client_session(base: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    page = session.get(base, timeout=30).text
    return session, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--port", type=int, default=8799)
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    p.add_argument("--time-limit", type=int, default=900, help="seconds")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    env = app_env(tmp, DETECTOR_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB), DETECTOR_RATE_LIMIT="")
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    prepare(env)
    gunicorn = gunicorn_command(args.port, args.workers, 60, "--log-level", "warning")
    server = subprocess.Popen(gunicorn, cwd=ROOT, env=env, stderr=open(tmp / "gunicorn.log", "w"))
    base = f"http://127.0.0.1:{args.port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if requests.get(base + "readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                raise SystemExit("server not ready within 120 s")
            time.sleep(0.2)

        kinds = payloads()
        sessions = [client_session(base) for _ in range(args.clients)]
        stop_at = time.time() + args.time_limit

        def send(i):
            if time.time() > stop_at:
                return None
            kind, name, data, ok = kinds[i % len(kinds)]
            session, token = sessions[i % args.clients]
            r = session.post(
                base,
                data={"csrfmiddlewaretoken": token},
                files={"image": (name, data)},
                headers={"Accept": "application/json", "Referer": base},
                timeout=60,
            )
            body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
            return kind, ok, r.status_code, body.get("id"), r.elapsed.total_seconds()

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = [r for r in pool.map(send, range(args.requests)) if r]
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=60)

    os.environ.update({k: env[k] for k in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_MEDIA_ROOT")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from detector.models import Detection
    from detector.services.detections import stored_names

    media = tmp / "media"
    rows = {str(d.pk): d for d in Detection.objects.all()}
    accepted = [r for r in results if r[2] == 201]
    wrong = [r for r in results if (r[2] == 201) != r[1]]
    files = {p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file() and "health" not in p.parts}
    expected = {n for d in rows.values() for n in stored_names(d) if (media / n).exists()}
    missing = [
        pk for pk, d in rows.items() if not all((media / f.name).is_file() for f in (d.image, d.preview, d.thumbnail))
    ]
    report = {
        "requests": len(results),
        "seconds": round(seconds, 1),
        "requests_per_s": round(len(results) / seconds, 1),
        "status": dict(sorted(Counter(r[2] for r in results).items())),
        "by_kind": {k: dict(Counter(r[2] for r in results if r[0] == k)) for k in sorted({r[0] for r in results})},
        "accepted": len(accepted),
        "rows": len(rows),
        "accepted_with_exactly_one_row": sum(1 for r in accepted if r[3] in rows),
        "rows_not_done": sum(1 for d in rows.values() if d.status != "done"),
        "rows_missing_a_file": len(missing),
        "orphan_files": len(files - expected),
        "server_errors": sum(1 for r in results if r[2] >= 500),
        "misclassified_uploads": len(wrong),
        "median_latency_ms": round(1000 * sorted(r[4] for r in results)[len(results) // 2]),
    }
    for key, value in report.items():
        print(f"{key:32s} {value}")
    ok = (
        report["server_errors"] == 0
        and report["misclassified_uploads"] == 0
        and report["orphan_files"] == 0
        and report["rows_missing_a_file"] == 0
        and report["rows"] == report["accepted"] == report["accepted_with_exactly_one_row"]
    )
    print("SOAK PASSED" if ok else "SOAK FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
