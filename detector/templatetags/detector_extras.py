from django import template

from .. import models
from ..ml.inference import video
from ..ml.measurement import sources
from ..services.verdicts import headline as verdict_headline

register = template.Library()


@register.filter
def percent(value, digits=1):
    """0.0034 -> '0.3 %'; None -> '—'."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def thousands(value):
    """12345 -> "12,345" (a count in running text); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) else value


@register.filter
def percent_text(value):
    """A probability for people: "< 1 %", "37 %", "> 99 %" (never 0 % or 100 %); None -> "—"."""
    return models.percent_text(None if value in (None, "") else float(value))


@register.filter
def percent_number(value):
    """0.376 -> "37.6" (an SVG coordinate on a 0-100 scale, with a dot whatever the locale)."""
    return f"{min(max(float(value or 0), 0.0), 1.0) * 100:.1f}"


@register.filter
def verdict_style(label):
    """A verdict's CSS class suffix: "Real" -> "real", "No face" -> "no-face" (the one look of each verdict)."""
    return models.verdict_style(label)


@register.filter
def source_name(key):
    """A training source for people: "gan256" -> "GAN portraits (256 px)"."""
    return sources.short_name(str(key))


@register.filter
def clock(seconds):
    """75.4 -> "1:15", a time into a video; None -> "—"."""
    if seconds in (None, ""):
        return "—"
    return video.clock(float(seconds))


@register.filter
def headline(label):
    """A verdict's heading: "Real" is said as "No sign of manipulation found" (the label itself stays Real)."""
    return verdict_headline(label)
