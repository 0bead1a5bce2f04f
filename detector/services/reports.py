"""A report of one detection that people can file: a JSON document and a PDF, the same facts in both.

It names the analysis it reports (model version and when it was made), the file (name, size, sha256,
dimensions, upload time), the verdict with its calibrated probability and both thresholds, each face
and each model's score, the provenance findings and the rule's reason, the review outcome and note,
earlier sightings (counts only) and the model's limits. The PDF embeds the image with its face boxes
and each face's heatmap, and a font with wide coverage (matplotlib's DejaVu Sans, from its package), so
that names in any script print.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.utils import timezone

from ..ml.inference.video import clock
from ..models import Detection, number_badge_boxes, percent_text
from . import sightings, verdicts
from .explanations import ExplanationUnavailable, face_image
from .inference import DetectorUnavailable
from .timeline import timeline_png

log = logging.getLogger(__name__)

LIMITS = (
    "The verdict comes from a machine-learning model trained on research face datasets; it is weakest on "
    "generators and manipulation methods it has not seen, and on small, heavily compressed or filtered images. "
    "Treat it as a lead for a human check, not as proof: a Real verdict does not prove an image is authentic."
)
SHARE_SALT = "detector.report.share"


def document(detection: Detection, facts: dict | None) -> dict:
    """The report as a JSON-ready dict."""
    seen = sightings.earlier(detection)
    explanation = verdicts.explain(detection, facts)
    real_below, deepfake_from = verdicts.thresholds_of(detection, facts)
    review = detection.review_outcome
    faces = detection.face_boxes()
    return {
        "report": {"generated_at": timezone.now().isoformat(), "platform": "Deepfake check"},
        "file": {
            "name": detection.original_name,
            "format": detection.image_format,
            "size_bytes": detection.size_bytes,
            "sha256": detection.sha256,
            "width": detection.width,
            "height": detection.height,
            "uploaded_at": detection.created_at.isoformat(),
            "kind": detection.kind,
            "duration_seconds": detection.duration_seconds,
        },
        "analysis": {
            "model_version": detection.model_version,
            "analysed_at": detection.analysed_at.isoformat() if detection.analysed_at else None,
            "status": detection.status,
            "processing_ms": detection.processing_ms,
            "thresholds": {"real_below": real_below, "deepfake_from": deepfake_from},
        },
        "verdict": {
            "label": detection.label,
            "fake_probability": detection.fake_probability,
            "in_words": " ".join(x for x in (explanation.summary, explanation.standing) if x) if explanation else "",
            "model_label": detection.model_label or detection.label,
            "reason": detection.verdict_reason,
            "error": detection.error_message,
        },
        "faces": [
            {
                "number": f["number"],  # as every page and the PDF call it: left to right, top to bottom
                "index": f["index"],  # its place in the stored order, which the face pictures' addresses use
                "box": {"x": f["x"], "y": f["y"], "width": f["w"], "height": f["h"]},
                "label": f["label"],
                "fake_probability": detection.faces[f["index"] - 1]["fake_probability"],
                "decided": f["decided"] or len(faces) == 1,
                "models": detection.face_models(detection.faces[f["index"] - 1]),
            }
            for f in faces
        ],
        "tracks": [
            {
                "id": t["id"],
                "label": t["label"],
                "fake_probability": t["fake_probability"],
                "decided": t.get("decided", False),
                "first_seconds": t["first_seconds"],
                "last_seconds": t["last_seconds"],
                "frames": t["frames"],
            }
            for t in detection.tracks or []
        ],
        "frames_sampled": detection.frames_sampled,
        "provenance": detection.provenance or [],
        "review": {
            "verdict": review["verdict"],
            "note": review["note"],
            "reviewed_at": review["at"].isoformat() if review["at"] else None,
        }
        if review
        else None,
        "earlier_sightings": {
            "count": seen.count,
            "first": seen.first.isoformat() if seen.first else None,
            "verdicts": seen.verdicts,
            "reviews": seen.reviews,
        },
        "limits": LIMITS,
    }


def share_token(detection: Detection) -> str:
    """A signed token for a read-only report page; it stops working after DETECTOR_SHARE_DAYS or once revoked."""
    return signing.dumps({"id": str(detection.pk), "key": detection.share_key}, salt=SHARE_SALT, compress=True)


def shared_detection(token: str) -> Detection | None:
    """The detection a share token opens, or None where it is forged, expired or revoked."""
    try:
        data = signing.loads(token, salt=SHARE_SALT, max_age=settings.DETECTOR_SHARE_DAYS * 86400)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    if not data.get("key"):
        return None
    return Detection.objects.filter(pk=data.get("id"), share_key=data["key"]).first()


def _font() -> tuple[str, str]:
    """DejaVu Sans (regular, bold) from matplotlib's package data, registered once with ReportLab."""
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont("DejaVuSans", fonts / "DejaVuSans.ttf"))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", fonts / "DejaVuSans-Bold.ttf"))
    return "DejaVuSans", "DejaVuSans-Bold"


def boxed_preview(detection: Detection) -> bytes:
    """The preview with each judged face's box and its number (as the pages number faces: left to right, top to
    bottom) drawn on it, legible at any size, as JPEG."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    with detection.preview.open("rb") as f, Image.open(f) as im:
        im = im.convert("RGB")
        scale = im.width / detection.width
        draw = ImageDraw.Draw(im)
        colours = {"deepfake": (164, 14, 38), "real": (17, 99, 41), "uncertain": (138, 83, 0)}
        outlines = {"deepfake": (255, 45, 74), "real": (46, 204, 113), "uncertain": (255, 176, 0)}
        faces = detection.face_boxes()
        side = max(18.0, min(im.width, im.height) / 18)
        font = ImageFont.truetype(
            str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"), int(side * 0.7)
        )
        for face in faces:
            box = [
                face["x"] * scale,
                face["y"] * scale,
                (face["x"] + face["w"]) * scale,
                (face["y"] + face["h"]) * scale,
            ]
            draw.rectangle(box, outline=outlines.get(face["style"], (200, 200, 200)), width=max(2, im.width // 200))
        for face, badge in zip(faces, number_badge_boxes(faces, scale, im.width, im.height, side), strict=True):
            draw.rectangle(badge, fill=colours.get(face["style"], (87, 96, 106)))
            draw.text(
                ((badge[0] + badge[2]) / 2, (badge[1] + badge[3]) / 2),
                str(face["number"]),
                fill=(255, 255, 255),
                font=font,
                anchor="mm",
            )
        out = io.BytesIO()
        im.save(out, "JPEG", quality=85)
        return out.getvalue()


def _png_ratio(png: bytes) -> float:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return im.height / im.width


def _stills(detection: Detection, track: dict) -> list[tuple[bytes, float, str]]:
    """A track's kept stills (JPEG bytes, height/width, caption), as far as the storage can read them."""
    from PIL import Image

    out = []
    for still in track.get("stills", []):
        if not still.get("image"):
            continue
        try:
            with detection.image.storage.open(still["image"], "rb") as f:
                data = f.read()
            with Image.open(io.BytesIO(data)) as im:
                ratio = im.height / im.width
        except (OSError, ValueError):
            log.warning("report of %s: a still cannot be read", detection.pk)
            continue
        out.append((data, ratio, f"{clock(still['seconds'])} · {percent_text(still['fake_probability'])} fake"))
    return out


def _heatmap(detection: Detection, number: int) -> bytes | None:
    try:
        return face_image(detection, number, "heatmap")
    except (ExplanationUnavailable, DetectorUnavailable):
        return None
    except OSError:
        log.warning("report of %s: the heatmap of face %d cannot be read", detection.pk, number)
        return None


def pdf(detection: Detection, facts: dict | None) -> bytes:
    """The report as a PDF (ReportLab): the facts of :func:`document`, the boxed image and the heatmaps."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Image as PdfImage
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = _font()
    body = ParagraphStyle("body", fontName=regular, fontSize=9.5, leading=13)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=11, textColor=colors.HexColor("#57606a"))
    h1 = ParagraphStyle("h1", parent=body, fontName=bold, fontSize=16, leading=20, spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=body, fontName=bold, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=3)
    doc = document(detection, facts)

    def p(text, style=body):
        from xml.sax.saxutils import escape

        return Paragraph(escape(str(text)), style)

    def table(rows):
        t = Table([[p(k, small), p(v)] for k, v in rows], colWidths=[42 * mm, 128 * mm])
        t.setStyle(
            TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey)])
        )
        return t

    v, f, a = doc["verdict"], doc["file"], doc["analysis"]
    story = [
        p(f"Deepfake check report: {f['name'] or detection.pk}", h1),
        p(f"Generated {doc['report']['generated_at'][:19].replace('T', ' ')} UTC", small),
        p("Verdict", h2),
        table(
            [
                ("Verdict", v["label"] or detection.get_status_display()),
                ("Fake probability", percent_text(v["fake_probability"])),
                ("In words", v["in_words"] or "—"),
                *([("Why", v["reason"]), ("The model alone said", v["model_label"])] if v["reason"] else []),
                (
                    "Thresholds",
                    f"Real below {percent_text(a['thresholds']['real_below'])}, Deepfake from "
                    f"{percent_text(a['thresholds']['deepfake_from'])}",
                ),
                ("Model", f"{a['model_version']}, analysed {(a['analysed_at'] or '—')[:19].replace('T', ' ')}"),
            ]
        ),
        p("File", h2),
        table(
            [
                ("Name", f["name"]),
                ("Format, size", f"{f['format']}, {f['width']}×{f['height']} px, {f['size_bytes']:,} bytes"),
                ("SHA-256", f["sha256"]),
                ("Uploaded", f["uploaded_at"][:19].replace("T", " ") + " UTC"),
            ]
        ),
    ]
    if detection.preview:
        try:
            preview = boxed_preview(detection)
            width = 120 * mm
            story += [
                Spacer(1, 4),
                PdfImage(io.BytesIO(preview), width=width, height=width * detection.height / detection.width),
            ]
        except OSError:
            log.warning("report of %s: the preview cannot be read", detection.pk)
    if doc["faces"]:
        story.append(p("Faces", h2))
        for face in doc["faces"]:
            scores = "; ".join(
                f"{m.get('title') or m.get('name') or 'model'} {m['version']}: "
                f"{m.get('label') or 'no label'}, {percent_text(m['fake_probability'])}"
                for m in face["models"]
                if len(face["models"]) > 1
            )
            line = (
                f"Face {face['number']}: {face['label']}, {percent_text(face['fake_probability'])} fake"
                + (" (decided the verdict)" if face["decided"] else "")
                + (f". Models: {scores}" if scores else "")
            )
            story.append(p(line))
            heat = _heatmap(detection, face["index"])
            if heat:
                story.append(PdfImage(io.BytesIO(heat), width=35 * mm, height=35 * mm))
    if detection.is_video:
        story.append(p("Faces over time (video)", h2))
        story.append(
            p(f"{doc['frames_sampled'] or 0} frames looked at, evenly over {clock(f['duration_seconds'] or 0)}.")
        )
        if doc["tracks"]:
            png = timeline_png(detection)
            story.append(PdfImage(io.BytesIO(png), width=170 * mm, height=170 * mm * _png_ratio(png)))
            story.append(
                p(
                    "Fake probability of each face at each frame looked at, with the Deepfake and Real thresholds.",
                    small,
                )
            )
        for t in doc["tracks"]:
            story.append(
                p(
                    f"Face {t['id']}: {t['label']}, {percent_text(t['fake_probability'])} fake, on screen "
                    f"{clock(t['first_seconds'])}–{clock(t['last_seconds'])} in {len(t['frames'])} frames"
                    + (" (decided the verdict)" if t["decided"] else "")
                )
            )
            stills = _stills(detection, next((x for x in detection.tracks if x["id"] == t["id"]), {}))
            if stills:
                cells = [
                    [PdfImage(io.BytesIO(data), width=50 * mm, height=50 * mm * ratio) for data, ratio, _ in stills]
                ]
                cells.append([p(words, small) for _, _, words in stills])
                story.append(Table(cells, hAlign="LEFT"))
        if not doc["tracks"]:
            story.append(p("No face was found in any frame looked at, so the detector judged nothing."))
    story.append(p("Provenance: what the file says about where it came from", h2))
    story += [
        p(f"{x['strength'].replace('_', ' ')}{', signed' if x.get('signed') else ''}: {x['text']}")
        for x in doc["provenance"]
    ] or [p("Not read for this check.")]
    if doc["review"]:
        story += [p("Review", h2), p(f"Reviewed: {doc['review']['verdict']}. {doc['review']['note']}")]
    seen = doc["earlier_sightings"]
    what = "video" if detection.is_video else "image"
    earlier = (
        f"The same or a near-identical {what} was checked {seen['count']} "
        f"time{'s' if seen['count'] != 1 else ''} before"
        + (f", first on {seen['first'][:10]}" if seen["first"] else "")
        if seen["count"]
        else f"This {what} was not checked on this platform before"
    )
    story += [
        p("Earlier sightings on this platform", h2),
        p(earlier + "."),
        p("Limits", h2),
        p(LIMITS, small),
    ]
    out = io.BytesIO()
    SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"Deepfake check report {detection.pk}",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
    ).build(story)
    return out.getvalue()
