"""What a person does in the browser: upload, see why, browse, delete, review."""

import base64
import io
import re

import pytest

from detector.models import Detection
from detector.templatetags.detector_extras import headline

pytestmark = pytest.mark.django_db(transaction=True)


def upload(page, live_server, path):
    page.goto(live_server.url + "/")
    page.set_input_files("input[type=file]", str(path))
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/detections/[0-9a-f-]+/$"))


def test_upload_with_the_file_picker_shows_progress_then_the_verdict(page, live_server, shipped, portrait, shot):
    page.goto(live_server.url + "/")
    shot(page, "1-upload-form", readme=True)
    page.set_input_files("input[type=file]", str(portrait))
    page.locator("#preview").wait_for(state="visible")  # visible once the chosen image has loaded

    def slow(route):  # hold the upload back a moment so the progress state can be seen
        page.wait_for_timeout(1200)
        route.continue_()

    page.route(
        live_server.url + "/", lambda route: slow(route) if route.request.method == "POST" else route.continue_()
    )
    page.click("#submit")
    page.locator("#progress").wait_for(state="visible")
    assert page.locator("#submit").is_disabled()
    shot(page, "2-upload-progress")
    page.wait_for_url(re.compile(r".*/detections/[0-9a-f-]+/$"))

    detection = Detection.objects.get()
    assert page.locator(".verdict .label").inner_text() == headline(detection.label)
    assert page.locator("svg.overlay .facebox rect.box").count() == 1
    heatmap = page.locator(".face-heatmap").first
    heatmap.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('.face-heatmap'); return i.complete && i.naturalWidth > 0; }"
    )
    assert heatmap.is_visible() and not page.locator(".face-crop").first.is_visible()
    shot(page, "3-result", readme=True)
    shot(page, "4-result-faces", page.locator(".faces"))
    page.click(".toggle-heatmap")
    assert page.locator(".face-crop").first.is_visible() and not heatmap.is_visible()


def test_upload_by_drag_and_drop(page, live_server, shipped, portrait):
    page.goto(live_server.url + "/")
    data = base64.b64encode(portrait.read_bytes()).decode()
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
            document.getElementById("dropzone").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
        }""",
        data,
    )
    page.locator("#preview").wait_for(state="visible")  # visible once the chosen image has loaded
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/detections/[0-9a-f-]+/$"))
    assert Detection.objects.get().original_name == "dropped.jpg"


def test_a_rejected_file_shows_its_error_and_stores_nothing(page, live_server, shipped, tmp_path, shot):
    fake_jpeg = tmp_path / "notes.jpg"
    fake_jpeg.write_text("not an image at all")
    page.goto(live_server.url + "/")
    page.set_input_files("input[type=file]", str(fake_jpeg))
    page.click("#submit")
    page.locator("#image-errors", has_text="not a JPEG, PNG, WebP, HEIC or AVIF").wait_for()
    shot(page, "5-rejected")
    assert not Detection.objects.exists()


def test_history_lists_the_upload_and_delete_removes_it(page, live_server, shipped, portrait, shot):
    upload(page, live_server, portrait)
    page.goto(live_server.url + "/history/")
    assert page.locator(".card", has_text="astronaut.jpg").count() == 1
    shot(page, "6-history")
    page.locator(".card a").first.click()
    page.click("text=Delete this check")
    page.click("button.danger")
    page.wait_for_url(re.compile(r".*/history/$"))
    assert page.locator(".messages", has_text="Deleted astronaut.jpg").is_visible()
    assert page.locator(".card").count() == 0
    assert not Detection.objects.exists()


def test_a_reviewer_marks_a_detection_reviewed_in_the_admin(
    page, live_server, shipped, portrait, django_user_model, shot
):
    upload(page, live_server, portrait)
    django_user_model.objects.create_superuser("reviewer", password="a-long-review-password")
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "reviewer")
    page.fill("#id_password", "a-long-review-password")
    page.click("input[type=submit]")
    page.goto(live_server.url + "/admin/detector/detection/")
    page.check("input.action-select")
    page.select_option("select[name=action]", "mark_reviewed_fake")
    page.click("button[name=index]")
    page.locator(".messagelist", has_text="Marked 1 detection").wait_for()
    shot(page, "7-admin-reviewed")
    detection = Detection.objects.get()
    assert detection.review_verdict == "fake" and detection.reviewed_by.username == "reviewer"
    page.goto(live_server.url + f"/admin/detector/detection/{detection.pk}/change/")
    page.locator(".face-heatmap").first.wait_for()
    shot(page, "8-admin-detail", readme=True)


def test_a_queued_upload_shows_its_verdict_by_itself_once_a_worker_has_judged_it(
    page, live_server, shipped, portrait, settings, monkeypatch, shot
):
    from detector import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False  # as with a broker: the upload only stores and queues
    queued = []
    monkeypatch.setattr(tasks.analyse_detection, "delay", queued.append)
    upload(page, live_server, portrait)
    assert page.locator(".verdict .label").inner_text() == "Queued…"
    shot(page, "6-result-queued")

    tasks.analyse_detection.apply(args=queued)  # what a worker does
    page.wait_for_function("() => !document.querySelector('[data-status-url]')", timeout=15_000)
    assert page.locator(".verdict .label").inner_text() == headline(Detection.objects.get().label)


def test_an_upload_over_the_rate_shows_the_wait_and_stores_nothing(
    browser, live_server, shipped, portrait, settings, shot
):
    settings.DETECTOR_RATE_LIMIT = "1/h"
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for attempt in range(2):
            page.goto(live_server.url + "/")
            page.set_input_files("input[type=file]", str(portrait))
            page.click("#submit")
            if attempt == 0:
                page.wait_for_url(re.compile(r".*/detections/[0-9a-f-]+/$"))
        page.locator("#image-errors", has_text="Too many uploads").wait_for()
        assert page.locator("#submit").is_enabled() and page.locator("#progress").is_hidden()
        shot(page, "5b-rate-limited-phone")
        assert Detection.objects.count() == 1
    finally:
        context.close()


def test_a_reviewer_switches_the_model_version_and_the_next_upload_uses_it(
    page, live_server, portrait, django_user_model, shot
):
    from tests.conftest import installed

    django_user_model.objects.create_superuser("reviewer", password="a-long-review-password")
    with installed(None):  # as a server: the active version serves, nothing pinned
        page.goto(live_server.url + "/admin/login/?next=/admin/detector/modelactivation/")
        page.fill("#id_username", "reviewer")
        page.fill("#id_password", "a-long-review-password")
        page.click("input[type=submit]")
        table = page.locator("#model-versions")
        row = table.locator("tr", has_text="faces-effnetlite0-v1 1.4.0")
        shot(page, "9-admin-model-versions")
        assert table.locator("tr", has_text="ensemble-v2 2.16.0").locator("strong", has_text="Active").is_visible()
        row.locator("button", has_text="Activate").click()
        page.locator(".messagelist").wait_for(timeout=60_000)
        shot(page, "9-admin-model-versions-activated")
        page.locator(".messagelist", has_text="Version faces-effnetlite0-v1 1.4.0 now serves").wait_for()
        assert row.locator("strong", has_text="Active").is_visible()
        assert page.locator("#result_list", has_text="reviewer").is_visible()  # what served when, and who chose it
        page.set_viewport_size({"width": 390, "height": 800})
        shot(page, "9-admin-model-versions-phone")
        scroller = page.locator(".versions-scroll")  # the table scrolls in its box; the page keeps the phone's width
        assert scroller.evaluate("e => e.scrollWidth > e.clientWidth && e.clientWidth <= 390")
        page.set_viewport_size({"width": 1100, "height": 900})
        upload(page, live_server, portrait)
        assert Detection.objects.get().model_version == "1.4.0"
        # The version before, on the same upload, side by side: the owner sees both on the result page.
        from django.core.management import call_command

        call_command("reanalyse", "--version", "2.12.0", stdout=io.StringIO())
        page.reload()
        compare = page.locator("section.compare")
        assert compare.locator("th", has_text="Version 1.4.0 (faces-effnetlite0-v1): the verdict shown").is_visible()
        assert compare.locator("th", has_text="Version 2.12.0 (ensemble-v1)").is_visible()
        shot(page, "9-every-models-view", compare)
        page.set_viewport_size({"width": 390, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, "9-every-models-view-phone", compare)
