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
            faces = [{"box": f.box, "fake_probability": round(f.fake_probability, 4)} for f in verdict.faces if f.box]
            if opts["json"]:
                self.stdout.write(
                    json.dumps(
                        {
                            "file": str(path),
                            "label": verdict.label,
                            "fake_probability": round(verdict.fake_probability, 4),
                            "confidence": round(verdict.confidence, 4),
                            "faces": faces,
                        }
                    )
                )
            else:
                found = f"{len(faces)} face(s)" if faces else "no face found (whole image judged)"
                self.stdout.write(f"{path}: {verdict.label}  fake probability {verdict.fake_probability:.3f}  {found}")
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) could not be analysed", returncode=2)
