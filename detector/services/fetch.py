"""Checks by link: the server fetches a media file a user names, and it goes through the upload path as a file.

Only with ``DETECTOR_FETCH_URLS`` on. The strict fetcher (:mod:`.outbound`: http or https, the address checked
after name resolution and at each of at most 3 redirects, ``DETECTOR_FETCH_TIMEOUT`` seconds in all) reads at most
the largest upload accepted; what comes back is then checked from its bytes like any upload, so the server's
Content-Type is believed for nothing but telling a web page from a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from ..uploads import max_file_bytes
from . import outbound

PAGE_TYPES = ("text/html", "application/xhtml+xml")
NOT_MEDIA = (
    "The link leads to a web page, not to an image or a video: open the page and link to (or upload) the "
    "picture or the video itself."
)


class FetchRefused(Exception):
    """The link cannot be checked; ``code`` for the API, the message for people."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


@dataclass
class Fetched:
    file: SimpleUploadedFile
    url: str  # as given
    final_url: str  # after redirects


def _looks_like_a_page(content_type: str, body: bytes) -> bool:
    if content_type.split(";", 1)[0].strip().lower() in PAGE_TYPES:
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml"))


def fetch(url: str) -> Fetched:
    """The media file behind ``url``, as an uploaded file; raises FetchRefused with the reason."""
    if not settings.DETECTOR_FETCH_URLS:
        raise FetchRefused("fetch_disabled", "Checks by link are turned off on this server: upload the file.", 403)
    try:
        answer = outbound.request(
            "GET", url, timeout=settings.DETECTOR_FETCH_TIMEOUT, max_bytes=max_file_bytes(), headers={"Accept": "*/*"}
        )
    except outbound.UrlRefused as exc:
        raise FetchRefused("url_refused", f"This link cannot be checked: {exc}.") from exc
    except outbound.FetchFailed as exc:
        too_large = "larger than" in str(exc)
        raise FetchRefused(
            "file_too_large" if too_large else "fetch_failed",
            f"The link could not be fetched: {exc}.",
            413 if too_large else 400,
        ) from exc
    if answer.status != 200:
        raise FetchRefused("fetch_failed", f"The link could not be fetched: it answered {answer.status}.")
    content_type = answer.headers.get("Content-Type", "")
    if _looks_like_a_page(content_type, answer.body):
        raise FetchRefused("not_media", NOT_MEDIA)
    if not answer.body:
        raise FetchRefused("empty", "The link gave an empty file.")
    name = unquote(urlsplit(answer.url).path.rsplit("/", 1)[-1]) or "linked-file"
    return Fetched(SimpleUploadedFile(name, answer.body, content_type.split(";", 1)[0]), url.strip(), answer.url)
