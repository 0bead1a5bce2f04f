import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detector.ml.inference import video
from detector.ml.inference.preprocessing import SERVING_DECODE_SIDE, ImageDecodeError, decode
from detector.services.inference import DetectorUnavailable, get_detector


class Command(BaseCommand):
    help = "Print the detector's verdict for each image or video file."

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
                with path.open("rb") as f:
                    container = video.container_of(f.read(64))
                if container is not None:
                    self._video(detector, path, container, opts["json"])
                    continue
                data = path.read_bytes()
                verdict = detector.judge(decode(data, settings.DETECTOR_MAX_PIXELS, min_side=SERVING_DECODE_SIDE))
            except (ImageDecodeError, video.VideoError, OSError) as exc:
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

    def _video(self, detector, path: Path, container: str, as_json: bool) -> None:
        """A video's verdict, its tracks and the time it took, as the site analyses it (without the stills)."""
        started = time.perf_counter()
        info = video.probe(str(path), settings.DETECTOR_MAX_VIDEO_SECONDS, settings.DETECTOR_MAX_PIXELS, container)
        result = video.analyse(
            detector, str(path), info, settings.DETECTOR_VIDEO_FPS, settings.DETECTOR_VIDEO_MAX_FRAMES, heatmaps=False
        )
        seconds = time.perf_counter() - started
        p = None if result.fake_probability is None else round(result.fake_probability, 4)
        tracks = [
            {
                "id": t.id,
                "label": t.label,
                "fake_probability": round(t.fake_probability, 4),
                "first_seconds": t.first_seconds,
                "last_seconds": t.last_seconds,
                "frames": len(t.frames),
                "decided": t.id == result.deciding_track,
            }
            for t in result.tracks
        ]
        if as_json:
            row = {
                "file": str(path),
                "kind": "video",
                "label": result.label,
                "fake_probability": p,
                "duration_seconds": info.duration,
                "frames_sampled": result.frames_sampled,
                "tracks": tracks,
                "seconds": round(seconds, 2),
            }
            self.stdout.write(json.dumps(row))
            return
        head = f"{path}: {result.label}"
        if p is not None:
            head += f"  fake probability {p:.3f}"
        self.stdout.write(
            f"{head}  video {video.clock(info.duration)}, {result.frames_sampled} frames looked at, "
            f"{len(tracks)} face track(s), analysed in {seconds:.1f} s"
        )
        for t in tracks:
            self.stdout.write(
                f"  face {t['id']}: {t['label']}  {t['fake_probability']:.3f}  on screen "
                f"{video.clock(t['first_seconds'])}-{video.clock(t['last_seconds'])} in {t['frames']} frames"
                + ("  (decides)" if t["decided"] else "")
            )
