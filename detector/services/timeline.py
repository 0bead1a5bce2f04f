"""A video's timeline: each face track's fake probability over time, with the thresholds, drawn server-side."""

from __future__ import annotations

import io

from ..models import Detection
from .overview import LABEL_COLOURS, new_figure, svg_of

TRACK_STYLES = ("-", "--", ":", "-.")


def timeline_svg(detection: Detection, narrow: bool = False) -> bytes:
    """The timeline as SVG, for the pages (``narrow``: for a phone, its text readable at 360 px)."""
    return svg_of(timeline_figure(detection, narrow))


def timeline_png(detection: Detection) -> bytes:
    """The timeline as PNG, for the PDF report."""
    fig = timeline_figure(detection)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=160, bbox_inches="tight")
    return buf.getvalue()


def timeline_figure(detection: Detection, narrow: bool = False):
    """Per-frame fake probability of each track (a line per track, its points where the face was seen), the
    Deepfake threshold and the Real one as dashed lines, over the whole length of the video."""
    fig, ax = new_figure(narrow)
    for k, track in enumerate(detection.tracks or []):
        frames = track.get("frames", [])
        ax.plot(
            [f["seconds"] for f in frames],
            [100 * f["fake_probability"] for f in frames],
            TRACK_STYLES[k % len(TRACK_STYLES)],
            marker="o",
            markersize=3,
            color=LABEL_COLOURS.get(track.get("label"), "#24292f"),
            label=f"Face {track['id']} ({track.get('label', '')})",
        )
    if detection.threshold is not None:
        ax.axhline(100 * detection.threshold, color=LABEL_COLOURS["Deepfake"], linewidth=0.8, linestyle="--")
        ax.annotate(
            "Deepfake from here",
            (0, 100 * detection.threshold),
            fontsize=8,
            va="bottom",
            xycoords=("axes fraction", "data"),
        )
    if detection.real_below is not None:
        ax.axhline(100 * detection.real_below, color=LABEL_COLOURS["Real"], linewidth=0.8, linestyle="--")
        ax.annotate(
            "Real below here", (0, 100 * detection.real_below), fontsize=8, va="top", xycoords=("axes fraction", "data")
        )
    ax.set_xlim(0, max(detection.duration_seconds or 0, 0.1))
    ax.set_ylim(0, 100)
    ax.set_xlabel("seconds into the video")
    ax.set_ylabel("fake probability (%)")
    if detection.tracks and narrow:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False, fontsize=8, ncol=2)
    elif detection.tracks:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return fig
