"""What a newcomer reads, in Chromium at 1280 and 390 px: group photos numbered as one reads them, pages that fit a
phone without a sideways scroll anywhere, shared video reports, the account's keys and callbacks."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from detector.models import Detection
from tests.browser.test_verdicts_and_phones import log_in, serious_violations
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)
WIDTHS = (1280, 390)
PASSWORD = "a-long-member-password"

# Every element wider than the window, and every box that scrolls sideways (a table, a chart): a page fits a phone
# only where there are none.
OVERFLOWS = """() => {
  const width = window.innerWidth, out = [];
  for (const e of document.querySelectorAll('body *')) {
    if (!e.offsetParent && getComputedStyle(e).position !== 'fixed') continue;
    const box = e.getBoundingClientRect(), style = getComputedStyle(e);
    const name = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && e.className.baseVal === undefined
      ? '.' + String(e.className).trim().split(/\\s+/).join('.') : '');
    // (a skip link waits wholly off screen until it is focused: not an overflow)
    if (box.right > 0 && (box.right > width + 1 || box.left < -1)) out.push(name + ' reaches ' + Math.round(box.right));
    if (['auto', 'scroll'].includes(style.overflowX) && e.scrollWidth > e.clientWidth + 1)
      out.push(name + ' scrolls sideways');
  }
  return out;
}"""


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", password=PASSWORD)


@pytest.fixture
def context_at(browser):
    contexts = []

    def make(width):
        context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def group_photo(client, stub_detector):
    """A member's group photo with five faces, stored largest first as the face finder stores them."""
    from tests.web.conftest import upload_file
    from tests.web.test_verdicts import five_faces

    client.post(reverse("detector:upload"), {"image": upload_file(data=image_bytes(size=(600, 320)))})
    detection = Detection.objects.get()
    Detection.objects.filter(pk=detection.pk).update(faces=five_faces(), width=600, height=320)
    return detection


@pytest.mark.parametrize("width", WIDTHS)
def test_a_group_photos_faces_are_numbered_as_one_reads_and_their_numbers_fit(
    context_at, live_server, client, member, stub_detector, shot, width
):
    client.force_login(member)
    detection = group_photo(client, stub_detector)
    page = context_at(width)
    log_in(page, live_server, "member", PASSWORD)
    page.goto(live_server.url + detection.get_absolute_url())
    page.locator("svg.overlay").wait_for()
    numbers = page.eval_on_selector_all(
        "svg.overlay .facebox",
        """(groups) => groups.map(g => {
            const tag = g.querySelector('rect.tag').getBoundingClientRect();
            const box = g.querySelector('rect.box').getBoundingClientRect();
            return {n: g.querySelector('text').textContent, x: box.x, y: box.y,
                    tag: [tag.left, tag.top, tag.right, tag.bottom]};
        })""",
    )
    image = page.eval_on_selector(
        ".annotated img", "(i) => { const b = i.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; }"
    )
    assert [int(f["n"]) for f in numbers] == [1, 2, 3, 4, 5]
    by_number = sorted(numbers, key=lambda f: int(f["n"]))
    rows = [by_number[:3], by_number[3:]]
    for row in rows:  # left to right within a row, and the second row below the first
        assert [f["x"] for f in row] == sorted(f["x"] for f in row)
    assert max(f["y"] for f in rows[0]) < min(f["y"] for f in rows[1])
    tags = [f["tag"] for f in numbers]
    for left, top, right, bottom in tags:
        assert image[0] - 1 <= left and right <= image[2] + 1 and image[1] - 1 <= top and bottom <= image[3] + 1
        assert bottom - top >= 18  # a number one can read, however small the picture is shown
    for i, a in enumerate(tags):
        for b in tags[i + 1 :]:
            assert not (a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1), (a, b)
    cards = [" ".join(t.split()) for t in page.locator(".face-card .face-score").all_inner_texts()]
    assert [c.split(" · ")[0].split()[-1] for c in cards] == ["1", "2", "3", "4", "5"]
    assert page.evaluate(OVERFLOWS) == []
    shot(page, f"group-photo-{width}")
    assert serious_violations(page) == []


def test_the_shared_report_and_the_pdf_carry_the_same_numbers(client, member, tiny_detector, live_server):
    """(The tiny real model: the PDF tries to draw each face's heatmap, which a stub cannot.)"""
    import io

    from pypdf import PdfReader

    from detector.services import reports

    client.force_login(member)
    detection = group_photo(client, tiny_detector)
    page = reports.document(Detection.objects.get(pk=detection.pk), None)
    assert [f["number"] for f in page["faces"]] == [1, 2, 3, 4, 5] and [f["index"] for f in page["faces"]][0] == 2
    pdf = client.get(reverse("detector:report", args=[detection.pk, "pdf"])).content
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert re.search(r"Face 1: Deepfake, 90 % fake", text)  # the leftmost of the top row is face 1 everywhere


@pytest.fixture
def video_check(client, member, settings):
    """A member's video (squares for faces, one swapped), analysed, and its read-only link."""
    from detector.services import reports
    from tests.clips import SquareDetector
    from tests.conftest import installed
    from tests.web.test_video import clip_file

    settings.DETECTOR_VIDEO_WORKERS = 0
    client.force_login(member)
    with installed(SquareDetector()):
        client.post(reverse("detector:upload"), {"image": clip_file()})
        detection = Detection.objects.get()
        from detector.services import analysis

        analysis.run(detection.pk)
    detection.refresh_from_db()
    client.post(reverse("detector:share", args=[detection.pk]))
    detection.refresh_from_db()
    return detection, reports.share_token(detection)


def test_pages_fit_a_phone_without_a_sideways_scroll_anywhere(
    context_at, live_server, client, member, stub_detector, video_check, shot
):
    video, token = video_check
    image = group_photo_after(client, stub_detector)
    page = context_at(390)
    log_in(page, live_server, "member", PASSWORD)
    problems = {}
    for name, url in [
        ("result-image", image.get_absolute_url()),
        ("result-video", video.get_absolute_url()),
        ("about", reverse("detector:about_model")),
        ("overview", reverse("detector:overview")),
        ("shared-video", reverse("detector:shared", args=[token])),
        ("account", reverse("account")),
        ("tokens", reverse("tokens")),
        ("webhooks", reverse("webhooks")),
        ("face", reverse("detector:face", args=[image.pk, 1])),
    ]:
        page.goto(live_server.url + url)
        page.wait_for_load_state("networkidle")
        found = page.evaluate(OVERFLOWS)
        if found:
            problems[name] = found[:5]
        shot(page, f"phone-{name}")
        violations = serious_violations(page)
        if violations:
            problems[name + " (axe)"] = violations
    assert problems == {}


def group_photo_after(client, stub_detector):
    from tests.web.conftest import upload_file
    from tests.web.test_verdicts import five_faces

    client.post(reverse("detector:upload"), {"image": upload_file(data=image_bytes(size=(600, 320)))})
    detection = Detection.objects.filter(kind="image").order_by("-created_at").first()
    Detection.objects.filter(pk=detection.pk).update(faces=five_faces(), width=600, height=320)
    return detection


@pytest.mark.parametrize("width", WIDTHS)
def test_a_shared_video_report_shows_the_timeline_the_tracks_and_their_stills(
    context_at, live_server, video_check, shot, width
):
    _, token = video_check
    page = context_at(width)  # a stranger with the link: no login
    page.goto(live_server.url + reverse("detector:shared", args=[token]))
    page.locator("figure.timeline img").wait_for()
    assert page.locator(".track-cards .face-card").count() == 2
    assert page.eval_on_selector("figure.timeline img", "(i) => i.complete && i.naturalWidth > 0")
    assert page.locator(".strip img").count() >= 2
    assert page.evaluate(OVERFLOWS) == []
    shot(page, f"shared-video-{width}")


def test_people_make_copy_and_revoke_their_own_keys(context_at, live_server, member, shot):
    page = context_at(1280)
    log_in(page, live_server, "member", PASSWORD)
    page.goto(live_server.url + "/")
    page.locator("footer a", has_text="Your API keys").click()
    page.fill("#id_name", "newsroom pipeline")
    page.get_by_role("button", name="Make a key").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("dfc_") and "shown this once" in page.content()
    shot(page, "tokens-made")
    answer = page.request.get(live_server.url + "/api/v1/detections/", headers={"Authorization": f"Token {key}"})
    assert answer.status == 200
    page.goto(live_server.url + "/accounts/tokens/")
    assert key not in page.content() and "newsroom pipeline" in page.content()
    page.get_by_role("button", name="Revoke").click()
    assert (
        page.request.get(live_server.url + "/api/v1/detections/", headers={"Authorization": f"Token {key}"}).status
        == 401
    )
