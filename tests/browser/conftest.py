"""A real browser (Debian's Chromium driven by Playwright) against the live test server."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "browser"
README_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# around it are plain synchronous calls, so Django's async-safety guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shot():
    """Save a screenshot of the page under test-output/browser/ (and docs/screenshots/ when asked)."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name, locator=None, readme=False):
        path = SHOTS / f"{name}.png"
        (locator or page).screenshot(path=path, **({} if locator else {"full_page": True}))
        if readme and os.environ.get("UPDATE_README_SCREENSHOTS"):
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, README_SHOTS / path.name)
        return path

    return take


@pytest.fixture(scope="session")
def portrait(tmp_path_factory) -> Path:
    """A real photograph with one face (scikit-image's astronaut), as JPEG."""
    from PIL import Image

    skimage_data = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("images") / "astronaut.jpg"
    buf = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())
    return path
