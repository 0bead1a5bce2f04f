import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detector.ml.preprocessing import SERVING_DECODE_SIDE, ImageDecodeError, decode
from detector.services.inference import DetectorUnavailable, get_detector


class Command(BaseCommand):
    help = "Print the detector's verdict for each image file."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args, files, **opts):
        try:
            detector = get_detector()
        except DetectorUnavailable as exc:
            raise CommandError(str(exc)) from exc
        failures = 0
        for path in files:
            try:
                if not path.is_file():
                    raise ImageDecodeError("no such file")
                data = path.read_bytes()
                verdict = detector.judge(decode(data, settings.DETECTOR_MAX_PIXELS, min_side=SERVING_DECODE_SIDE))
            except (ImageDecodeError, OSError) as exc:
                failures += 1
                self.stderr.write(f"{path}: not analysed: {exc}")
                continue
            faces = [
                {"box": f.box, "label": f.label, "fake_probability": round(f.fake_probability, 4)}
                for f in verdict.faces
                if f.box
            ]
            # No face, no verdict: as the API, no probability or confidence is claimed for the image.
            p = round(verdict.fake_probability, 4) if verdict.face_found else None
            confidence = None if verdict.confidence is None else round(verdict.confidence, 4)
            if opts["json"]:
                self.stdout.write(
                    json.dumps(
                        {
                            "file": str(path),
                            "label": verdict.label,
                            "fake_probability": p,
                            "confidence": confidence,
                            "faces": faces,
                        }
                    )
                )
            elif faces:
                self.stdout.write(f"{path}: {verdict.label}  fake probability {p:.3f}  {len(faces)} face(s)")
            else:
                self.stdout.write(f"{path}: {verdict.label}  (no face found, so nothing was judged)")
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) could not be analysed", returncode=2)
