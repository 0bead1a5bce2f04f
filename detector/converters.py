"""URL path converters for the routes that take a kind: each matches only the kinds its route serves, so any
other is the site's 404 before a view runs (``report.heatmap`` is no report)."""

from __future__ import annotations

import re

from django.urls import register_converter


def _one_of(*kinds: str) -> type:
    class OneOf:
        regex = "|".join(re.escape(k) for k in kinds)

        def to_python(self, value: str) -> str:
            return value

        def to_url(self, value: str) -> str:
            if value not in kinds:
                raise ValueError(f"{value!r} is not one of {kinds}")
            return value

    return OneOf


REPORT_KINDS = ("pdf", "json")
FACE_PICTURES = ("crop", "heatmap")
STILL_PICTURES = ("image", "heatmap")
FILE_VARIANTS = ("image", "preview", "thumbnail")
CHARTS = ("labels", "scores")

register_converter(_one_of(*REPORT_KINDS), "report")
register_converter(_one_of(*FACE_PICTURES), "face_picture")
register_converter(_one_of(*STILL_PICTURES), "still_picture")
register_converter(_one_of(*FILE_VARIANTS), "file_variant")
register_converter(_one_of(*CHARTS), "chart")
