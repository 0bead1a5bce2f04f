"""Counts and charts of a set of detections, drawn server-side with matplotlib."""

from __future__ import annotations

import io
from collections import Counter

from django.db.models import Count
from django.db.models.functions import TruncDate

from ..models import Label

# The site's colours of each verdict (site.css, faces.css): Real green, Deepfake red, Uncertain amber, No face grey;
# a failed analysis dark, hatched.
LABEL_COLOURS = {
    Label.REAL: "#116329",
    Label.DEEPFAKE: "#a40e26",
    Label.UNCERTAIN: "#f0b400",
    Label.NO_FACE: "#8c959f",
    Label.NO_VERDICT: "#24292f",
}
HATCHES = {Label.NO_VERDICT: "//"}


def label_counts(queryset) -> dict[str, int]:
    counts = Counter(dict(queryset.values_list("label").annotate(n=Count("pk")).values_list("label", "n")))
    return {label: counts.get(label, 0) for label in LABEL_COLOURS}


def new_figure(narrow: bool = False):
    """A figure of its own, without pyplot: pyplot's global state is not safe in the threads of a web server, where
    the overview's charts are drawn concurrently (matplotlib's "Embedding in a web application server").

    ``narrow``: for a phone's width (about 360 px), taller than wide so that its text keeps a readable size."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 4.2) if narrow else (7, 3.2))
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def whole_numbers(ax) -> None:
    """Ticks of whole checks on the y axis, never "0.5 checks"."""
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def svg_of(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


def labels_over_time_svg(queryset, narrow: bool = False) -> bytes:
    """Stacked daily counts of each verdict."""
    rows = queryset.annotate(day=TruncDate("created_at")).values("day", "label").annotate(n=Count("pk"))
    days = sorted({r["day"] for r in rows})
    fig, ax = new_figure(narrow)
    bottom = [0] * len(days)
    for label, colour in LABEL_COLOURS.items():
        heights = [sum(r["n"] for r in rows if r["day"] == d and r["label"] == label) for d in days]
        if any(heights):
            ax.bar(
                [d.isoformat() for d in days],
                heights,
                bottom=bottom,
                color=colour,
                label=label,
                hatch=HATCHES.get(label),
                edgecolor="white" if label in HATCHES else colour,
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("checks")
    whole_numbers(ax)
    ax.set_title("Verdicts per day")
    if days:
        # Outside the bars (below them on a phone): a legend inside would hide the bars it names.
        if narrow:
            ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2)
        else:
            ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    else:
        ax.text(0.5, 0.5, "no checks yet", ha="center", va="center", transform=ax.transAxes)
    return svg_of(fig)


def score_distribution_svg(queryset, narrow: bool = False) -> bytes:
    """Histogram of fake probabilities, with the thresholds that were used."""
    probs = list(
        queryset.exclude(fake_probability=None)
        .filter(label__in=(Label.REAL, Label.UNCERTAIN, Label.DEEPFAKE))
        .values_list("fake_probability", flat=True)
    )
    thresholds = sorted(set(queryset.exclude(threshold=None).values_list("threshold", flat=True)))
    fig, ax = new_figure(narrow)
    ax.hist(probs, bins=20, range=(0, 1), color="#0b5cad")
    for t in thresholds:
        ax.axvline(t, color="#a40e26", linestyle="--", linewidth=1)
    ax.set_xlabel("fake probability (dashed: Deepfake threshold)")
    ax.set_ylabel("checks")
    whole_numbers(ax)
    ax.set_title("Distribution of fake probabilities")
    return svg_of(fig)
