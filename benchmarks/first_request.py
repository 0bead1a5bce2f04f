"""Seconds from server start to the first stored verdict, and the first upload's latency.

Starts the app (gunicorn, or runserver with --runserver), waits until the upload page
answers, then uploads a generated portrait-sized JPEG three times through the form.

    .venv/bin/python benchmarks/first_request.py [--runserver]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import io
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from loopback import ROOT, app_env, gunicorn_command, prepare
from PIL import Image


def jpeg() -> bytes:
    skimage = __import__("skimage.data", fromlist=["astronaut"])
    buf = io.BytesIO()
    Image.fromarray(skimage.astronaut()).resize((1024, 1024)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(token: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n{token}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="portrait.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runserver", action="store_true")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = app_env(tmp)
    prepare(env)
    if args.runserver:
        cmd = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"]
    else:
        cmd = gunicorn_command(args.port, 1, 120)
    base = f"http://127.0.0.1:{args.port}/"
    started = time.perf_counter()
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        while True:
            try:
                page = opener.open(base, timeout=2).read().decode()
                break
            except OSError as exc:
                if time.perf_counter() - started > 120:
                    raise SystemExit("server did not answer within 120 s") from exc
                time.sleep(0.1)
        answered = time.perf_counter() - started
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = jpeg()
        times = []
        for _ in range(3):
            body, ctype = multipart(token, data)
            req = urllib.request.Request(base, data=body, headers={"Content-Type": ctype, "Referer": base})
            t = time.perf_counter()
            with opener.open(req, timeout=60) as resp:  # read and close: a sync worker serves one connection
                resp.read()
                assert "/detections/" in resp.url, resp.url
            times.append(time.perf_counter() - t)
        first_verdict = answered + times[0]
        print(
            f"{'runserver' if args.runserver else 'gunicorn (1 worker)'}: first page after {answered:.1f} s, "
            f"first verdict stored after {first_verdict:.1f} s; upload latency "
            + ", ".join(f"{x * 1000:.0f} ms" for x in times)
            + " (1024x1024 JPEG, 1 face)"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
