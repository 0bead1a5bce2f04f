"""The CPU one upload costs, split into its parts, with the shipped model; run by ``bench.py`` (section ``upload``).

The whole upload goes through Django in this process (the form, asking for JSON, with production settings and a
throw-away SQLite database from the environment ``bench.py`` gives it); the CPU of each part is taken inside the
same uploads by wrapping its function, and what is left is Django, the database and the files. CPU is the
process's (every thread's).

    .venv/bin/python benchmarks/bench.py --only upload
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart  # noqa: E402

from detector import provenance, uploads  # noqa: E402
from detector.ml.inference.predictor import Detector  # noqa: E402
from detector.services import detections  # noqa: E402
from detector.services.inference import load_service  # noqa: E402

PARTS = {  # what is timed inside each upload: (module or class, function name)
    "checks and decode": (uploads, "check_image"),
    "preview and thumbnail": (detections, "derived_jpegs"),
    "faces": (Detector, "prepare"),
    "classifier": (Detector, "face_logits"),  # per network: an ensemble's members each, once
    "provenance": (provenance, "read"),
    "perceptual hash": (detections, "perceptual_hash"),
}


def timed_parts(spent: dict):
    """Wrap each part so that the CPU it takes inside an upload is added to ``spent``."""
    for name, (owner, attr) in PARTS.items():
        real = getattr(owner, attr)

        def timed(*args, _real=real, _name=name, **kwargs):
            t = time.process_time()
            try:
                return _real(*args, **kwargs)
            finally:
                spent[_name] = spent.get(_name, 0.0) + (time.process_time() - t) * 1000

        setattr(owner, attr, timed)


def split(data: bytes, calls: int) -> dict:
    """Median CPU of an upload and of each part inside it, over ``calls`` uploads after two to warm up."""
    detector = load_service()
    body = encode_multipart(BOUNDARY, {"image": SimpleUploadedFile("photo.jpg", data, "image/jpeg")})
    client = Client(HTTP_HOST=settings.ALLOWED_HOSTS[0])
    rows = []
    for i in range(calls + 2):
        spent = dict.fromkeys(PARTS, 0.0)
        SPENT.clear()
        SPENT.update(spent)
        t = time.process_time()
        response = client.generic("POST", "/", body, MULTIPART_CONTENT, HTTP_ACCEPT="application/json")
        total = (time.process_time() - t) * 1000
        assert response.status_code == 201 and response.json()["status"] == "done", response.content[:300]
        if i >= 2:
            rows.append({**SPENT, "total": total})
    out = {k: round(statistics.median(r[k] for r in rows), 1) for k in PARTS}
    rest = [r["total"] - sum(r[k] for k in PARTS) for r in rows]
    out["Django, database and files"] = round(statistics.median(rest), 1)
    out["besides faces and classifier"] = round(
        statistics.median(r["total"] - r["faces"] - r["classifier"] for r in rows), 1
    )
    out["total"] = round(statistics.median(r["total"] for r in rows), 1)
    decoded = uploads.check_image(
        data, int(settings.DETECTOR_MAX_UPLOAD_MB * 1024 * 1024), settings.DETECTOR_MAX_PIXELS
    )
    pixels = getattr(decoded, "decoded", None) or decoded.image
    prepared = detector.prepare(pixels)
    out["faces_found"] = len(prepared.crops) if prepared.face_found else 0
    out["decoded_at"] = list(getattr(pixels, "image", pixels).size)
    return out


SPENT: dict = {}


def main():
    timed_parts(SPENT)
    photos = json.loads(sys.argv[1])  # {name: path of a JPEG}
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    result = {name: split(Path(path).read_bytes(), calls) for name, path in photos.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
