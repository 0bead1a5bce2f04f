"""A video in Chromium: uploaded, followed while it is analysed, then its tracks, timeline and stills."""

from __future__ import annotations

import re

import pytest

from detector.models import Detection, Kind
from detector.templatetags.detector_extras import headline
from tests.browser.test_verdicts_and_phones import serious_violations

pytestmark = pytest.mark.django_db(transaction=True)
av = pytest.importorskip("av")


@pytest.fixture
def clip(tmp_path):
    from tests.clips import portrait_clip

    path = tmp_path / "interview.mp4"
    path.write_bytes(portrait_clip())
    return path


@pytest.fixture
def page(browser):
    """A page that axe-core can be injected into (only such a context lets it past the site's CSP)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=True)
    yield context.new_page()
    context.close()


def test_a_video_is_followed_to_its_verdict_with_tracks_timeline_and_stills(
    browser, page, live_server, shipped, clip, settings, shot
):
    settings.DETECTOR_VIDEO_WORKERS = 1  # this process's pool analyses it, as without a broker in production
    page.goto(live_server.url + "/")
    page.set_input_files("input[type=file]", str(clip))
    assert page.locator("#image-errors").inner_text().strip() == ""
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/detections/[0-9a-f-]+/$"))
    page.locator(".tracks").wait_for(timeout=60_000)  # the status poll reloads the page once it is done
    detection = Detection.objects.get()
    assert detection.kind == Kind.VIDEO and detection.frames_sampled == 8
    # The face is followed through every frame (the face finder may add a short-lived box around it).
    assert max(len(t["frames"]) for t in detection.tracks) == 8
    assert page.locator(".verdict .label").inner_text().strip().endswith(headline(detection.label))
    timeline = page.locator(".timeline img")
    timeline.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".track-cards .face-card").count() == len(detection.tracks)
    assert page.locator(".strip img").count() == sum(len(t["stills"]) for t in detection.tracks)
    shot(page, "video-result", readme=True)
    assert serious_violations(page) == []

    page.click(".strip a >> nth=0")
    page.wait_for_url(re.compile(r".*/tracks/1/stills/1/$"))
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".still-pair img").count() == 2
    shot(page, "video-still")
    assert serious_violations(page) == []

    phone = browser.new_context(viewport={"width": 390, "height": 844})
    other = phone.new_page()
    try:
        other.context.add_cookies(page.context.cookies())
        other.goto(live_server.url + detection.get_absolute_url())
        other.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        scroll, inner = other.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"the page is {scroll} px wide on a {inner} px phone"
        shot(other, "video-result-phone")
    finally:
        phone.close()


def test_the_batch_page_follows_a_video_to_its_verdict_beside_an_image(
    page, live_server, shipped, clip, portrait, settings, shot
):
    settings.DETECTOR_VIDEO_WORKERS = 1
    page.goto(live_server.url + "/batch/")
    page.set_input_files("input[type=file]", [str(portrait), str(clip)])
    assert page.locator(".batch-item").count() == 2
    page.click("#submit")
    page.locator("#batch-summary", has_text=re.compile(r"2 checked")).wait_for(timeout=30_000)
    rows = page.locator(".batch-item")
    rows.nth(1).locator("a.badge").wait_for(timeout=60_000)  # the video: pending, then its verdict
    detections = {d.original_name: d for d in Detection.objects.all()}
    assert detections["interview.mp4"].kind == Kind.VIDEO
    for i, name in ((0, "astronaut.jpg"), (1, "interview.mp4")):
        badge = rows.nth(i).locator("a.badge")
        badge.wait_for()
        detection = Detection.objects.get(original_name=name)
        assert badge.inner_text() == detection.label and badge.get_attribute("href") == detection.get_absolute_url()
    shot(page, "video-batch")
