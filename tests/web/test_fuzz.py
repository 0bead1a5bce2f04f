"""Hostile bytes at the upload form: never a 500, never a row without its file or a file without its row.

Bounded for `make test`; set DETECTOR_FUZZ_EXAMPLES for a longer run.
"""

import os
from http import HTTPStatus

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.models import Detection
from tests.conftest import image_bytes
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
EXAMPLES = int(os.environ.get("DETECTOR_FUZZ_EXAMPLES", "120"))
SEEDS = {fmt: image_bytes(fmt, size=(64, 48)) for fmt in ("JPEG", "PNG", "WEBP")}


@st.composite
def mutated_images(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    return bytes(data)


hostile = st.one_of(st.binary(max_size=4096), mutated_images())


@pytest.fixture
def no_rate_limit(settings):
    # Set once per test: each assignment through the fixture nests another override,
    # and the body below runs once per example.
    settings.DETECTOR_RATE_LIMIT = ""


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=hostile, name=st.sampled_from(["a.jpg", "b.png", "c.webp", "d.gif", "e"]))
def test_hostile_uploads_never_break_the_site(client, tiny_detector, media_root, no_rate_limit, run_counts, data, name):
    counts = run_counts(f"fuzz: hostile uploads posted (DETECTOR_FUZZ_EXAMPLES={EXAMPLES})")
    counts["uploads"] += 1
    response = client.post(reverse("detector:upload"), {"image": upload_file(name, data, "image/jpeg")})
    counts[f"HTTP {response.status_code}"] += 1
    assert response.status_code in (HTTPStatus.FOUND, HTTPStatus.BAD_REQUEST)
    rows = list(Detection.objects.all())
    files = {p.relative_to(media_root).as_posix() for p in media_root.rglob("*") if p.is_file()}
    expected = {f.name for d in rows for f in (d.image, d.preview, d.thumbnail)}
    assert files == expected
    assert all(d.status in ("done", "failed") for d in rows)
