"""Many images at once in the browser, and the API's documentation page under the site's strict policy."""

import re

import pytest

from detector.models import Detection

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_batch_with_one_bad_file_shows_each_files_verdict_or_error(
    page, live_server, shipped, portrait, tmp_path, shot
):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image at all")
    second = tmp_path / "second.jpg"
    second.write_bytes(portrait.read_bytes())
    page.goto(live_server.url + "/batch/")
    page.set_input_files("input[type=file]", [str(portrait), str(notes), str(second)])
    assert page.locator(".batch-item").count() == 3
    page.click("#submit")
    page.locator("#batch-summary", has_text=re.compile(r"2 checked, 1 not accepted")).wait_for(timeout=30_000)
    shot(page, "9-batch")

    rows = page.locator(".batch-item")
    assert (
        rows.nth(1).locator(".state.error").inner_text()
        == "This is not a JPEG, PNG, WebP, HEIC or AVIF image, nor an MP4, MOV, WebM or MKV video."
    )
    detections = {d.original_name: d for d in Detection.objects.all()}
    assert sorted(detections) == ["astronaut.jpg", "second.jpg"]
    for i, name in ((0, "astronaut.jpg"), (2, "second.jpg")):
        badge = rows.nth(i).locator("a.badge")
        assert badge.inner_text() == detections[name].label
        assert badge.get_attribute("href") == detections[name].get_absolute_url()


def test_the_api_docs_render_from_this_sites_files_without_breaking_its_policy(page, live_server, shot):
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(live_server.url + "/api/docs/")
    page.locator(".swagger-ui .info .title", has_text="Deepfake check API").wait_for()
    page.locator(".opblock").first.wait_for()
    shot(page, "10-api-docs")
    # list, upload, one, delete, face image, video still, report, model, and the callbacks: list, register, remove
    assert page.locator(".opblock").count() == 11
    assert problems == []
    assert all(url.startswith(live_server.url) or url.startswith("data:") for url in requested)
