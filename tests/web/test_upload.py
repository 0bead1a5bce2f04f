"""Uploading: valid images are stored and analysed; every rejection stores nothing."""

import io
import os
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from detector.ml.inference import preprocessing  # noqa: F401 (registers the HEIF opener the tests save with)
from detector.models import Detection, Kind
from tests.conftest import image_bytes
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
UPLOAD = reverse("detector:upload")


def stored_files(media_root):
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


@pytest.mark.parametrize(
    "fmt, ext, content_type",
    [
        ("JPEG", "jpg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("HEIF", "heic", "image/heic"),
        ("AVIF", "avif", "image/avif"),
    ],
)
def test_it_stores_and_analyses_each_allowed_format(client, stub_detector, media_root, fmt, ext, content_type):
    response = client.post(UPLOAD, {"image": upload_file(f"holiday.{ext}", image_bytes(fmt), content_type)})
    detection = Detection.objects.get()
    assert response.status_code == HTTPStatus.FOUND
    assert response.url == reverse("detector:result", args=[detection.pk])
    assert detection.status == "done" and detection.label == "Deepfake" and detection.kind == Kind.IMAGE
    assert detection.image_format == fmt and detection.content_type == content_type
    assert detection.image.name == f"uploads/{detection.pk}.{ext}"
    assert detection.original_name == f"holiday.{ext}"
    assert (detection.width, detection.height) == (320, 240)
    assert len(detection.sha256) == 64 and detection.faces[0]["box"] == [80, 60, 160, 120]
    assert len(stored_files(media_root)) == 3  # original, preview, thumbnail


def test_the_stored_name_never_comes_from_the_client(client, stub_detector):
    client.post(UPLOAD, {"image": upload_file("../../etc/passwd<script>.jpg")})
    detection = Detection.objects.get()
    assert detection.image.name == f"uploads/{detection.pk}.jpg"
    assert detection.original_name == "passwd<script>.jpg"


def test_the_original_name_is_length_limited(client, stub_detector):
    client.post(UPLOAD, {"image": upload_file("x" * 300 + ".jpg")})
    assert len(Detection.objects.get().original_name) == 120


def test_json_clients_get_the_result_url(client, stub_detector):
    response = client.post(UPLOAD, {"image": upload_file()}, headers={"Accept": "application/json"})
    assert response.status_code == HTTPStatus.CREATED
    assert response.json()["url"] == reverse("detector:result", args=[Detection.objects.get().pk])


def truncated_jpeg():
    return image_bytes("JPEG", size=(640, 480))[:2000]


def tiff_named_png():
    buf = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buf, "TIFF")
    return buf.getvalue()


def grey_bomb():
    """A JPEG cut to 29 KB that still declares 6000x6000 pixels: decoded, it would be 36 MP of grey."""
    buf = io.BytesIO()
    Image.new("RGB", (6000, 6000), (128, 128, 128)).save(buf, "JPEG", quality=10)
    return buf.getvalue()[:29_000] + b"\xff\xd9"


SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
REJECTIONS = [
    # data smuggled past the image's real end, made to look like an ending the last bytes would show
    ("zip.jpg", lambda: image_bytes("JPEG") + b"PK\x03\x04" + b"z" * 40 + b"\xff\xd9", "extra data after the image"),
    (
        "html.png",
        lambda: image_bytes("PNG") + b"<html></html>" + b"\x00\x00\x00\x00IEND\xaeB`\x82",
        "extra data after the image",
    ),
    ("bomb.jpg", grey_bomb, "truncated or damaged"),
    ("cut.jpg", lambda: (lambda d: d[: len(d) // 2] + b"\xff\xd9")(image_bytes("JPEG", (640, 480))), "truncated"),
    ("truncated.jpg", truncated_jpeg, "truncated or damaged"),
    ("scan.png", tiff_named_png, "not a JPEG, PNG, WebP, HEIC or AVIF"),
    ("logo.svg", lambda: SVG, "not a JPEG, PNG, WebP, HEIC or AVIF"),
    ("notes.jpg", lambda: b"just some text, not pixels", "not a JPEG, PNG, WebP, HEIC or AVIF"),
    (
        "polyglot.png",
        lambda: image_bytes("PNG") + b"<html><script>alert(1)</script></html>",
        "extra data after the image",
    ),
    ("empty.jpg", lambda: b"", "empty"),
    ("trailing.heic", lambda: image_bytes("HEIF") + b"<html><script>alert(1)</script></html>", "extra data"),
    ("trailing.avif", lambda: image_bytes("AVIF") + b"PK\x03\x04" + b"z" * 40, "extra data"),
    ("cut.avif", lambda: image_bytes("AVIF", size=(640, 480))[:-40], "truncated or damaged"),
    ("cut.heic", lambda: image_bytes("HEIF", size=(640, 480))[:-40], "truncated or damaged"),
]


@pytest.mark.parametrize("name, make, message", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_it_rejects_bad_files_and_stores_nothing(client, stub_detector, media_root, name, make, message):
    response = client.post(UPLOAD, {"image": upload_file(name, make(), "image/png")})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in response.content.decode()
    assert not Detection.objects.exists()
    assert stored_files(media_root) == []
    assert stub_detector.calls == 0


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_phone_photo_is_turned_upright_by_its_container(client, stub_detector, fmt):
    """An iPhone stores a portrait as a landscape picture with a rotation; the check sees it upright."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    data = image_bytes(fmt, size=(320, 240), exif=exif.tobytes())
    client.post(UPLOAD, {"image": upload_file(f"portrait.{fmt.lower()}", data, "image/heic")})
    detection = Detection.objects.get()
    assert (detection.kind, detection.width, detection.height) == (Kind.IMAGE, 240, 320)


def test_it_rejects_decompression_bombs(client, stub_detector, media_root, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    response = client.post(UPLOAD, {"image": upload_file("bomb.png", image_bytes("PNG", size=(100, 100)))})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "too many pixels" in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_it_rejects_more_pixels_than_the_setting(client, stub_detector, settings):
    settings.DETECTOR_MAX_PIXELS = 10_000
    response = client.post(UPLOAD, {"image": upload_file()})
    assert "megapixels" in response.content.decode()
    assert not Detection.objects.exists()


def test_it_rejects_files_over_the_size_limit(client, stub_detector, settings, media_root):
    settings.DETECTOR_MAX_UPLOAD_MB = 0.01
    noise = Image.frombytes("RGB", (100, 100), os.urandom(30_000))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    response = client.post(UPLOAD, {"image": upload_file(data=buf.getvalue())})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "larger than 0.01 MB" in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_it_rejects_two_files_where_one_is_expected(client, stub_detector, media_root):
    response = client.post(UPLOAD, {"image": [upload_file("a.jpg"), upload_file("b.jpg")]})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "one file at a time" in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_it_requires_a_file(client, stub_detector):
    response = client.post(UPLOAD, {})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not Detection.objects.exists()


def test_json_clients_get_errors_as_json(client, stub_detector):
    response = client.post(UPLOAD, {"image": upload_file(data=b"text")}, headers={"Accept": "application/json"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and error["field"] == "image" and "not a JPEG" in error["message"]


def test_csrf_is_enforced():
    client = Client(enforce_csrf_checks=True)
    response = client.post(UPLOAD, {"image": upload_file()})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not Detection.objects.exists()


def test_a_detector_failure_is_stored_as_failed_with_its_reason(client, stub_detector, media_root):
    stub_detector.error = RuntimeError("model exploded")
    response = client.post(UPLOAD, {"image": upload_file()})
    detection = Detection.objects.get()
    assert response.status_code == HTTPStatus.FOUND
    assert detection.status == "failed" and detection.label == "No verdict"
    assert "model exploded" in detection.error_message
    assert len(stored_files(media_root)) == 3  # the evidence is kept with its row
    page = client.get(response.url)
    assert page.status_code == HTTPStatus.OK and "could not be analysed" in page.content.decode()


def test_an_unavailable_detector_stores_nothing(client, media_root, monkeypatch):
    from detector.services import inference

    monkeypatch.setattr(inference, "_detector", None)
    monkeypatch.setattr(inference, "load_service", lambda warm_up=True, path=None: None)
    response = client.post(UPLOAD, {"image": upload_file()})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "not available" in response.content.decode()
    assert not Detection.objects.exists() and stored_files(media_root) == []


def test_a_database_failure_leaves_no_orphaned_file(client, stub_detector, media_root, monkeypatch):
    from django.db import DatabaseError

    def broken_save(self, *args, **kwargs):
        raise DatabaseError("database is locked")

    monkeypatch.setattr(Detection, "save", broken_save)
    with pytest.raises(DatabaseError):
        client.post(UPLOAD, {"image": upload_file()})
    assert stored_files(media_root) == []


def test_previews_and_thumbnails_carry_none_of_the_uploads_metadata(client, stub_detector, media_root):
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x010F] = "Canon"  # camera make
    exif[0x8825] = {1: "N"}  # a GPS block
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = image_bytes("JPEG", exif=exif, icc_profile=icc, comment=b"<script>alert(1)</script>")
    client.post(UPLOAD, {"image": upload_file("meta.jpg", data)})
    detection = Detection.objects.get()
    assert Image.open(media_root / detection.image.name).info.get("comment")  # the evidence is kept as it came
    for copy in (detection.preview, detection.thumbnail):
        info = Image.open(media_root / copy.name).info
        assert not {"comment", "exif", "icc_profile", "xmp"} & info.keys(), info.keys()


def mpo_bytes() -> bytes:
    """A phone-style JPEG with a second image after the first (MPO), as Pillow writes one."""
    buf = io.BytesIO()
    second = Image.new("RGB", (80, 60), (10, 10, 200))
    Image.open(io.BytesIO(image_bytes("JPEG"))).save(buf, "MPO", save_all=True, append_images=[second])
    return buf.getvalue()


def test_a_phone_jpeg_with_a_second_image_is_accepted_as_a_jpeg(client, stub_detector, media_root):
    data = mpo_bytes()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert client.post(UPLOAD, {"image": upload_file("phone.jpg", data)}).status_code == HTTPStatus.FOUND
    detection = Detection.objects.get()
    assert (detection.image_format, detection.content_type, detection.width) == ("JPEG", "image/jpeg", 320)
    assert (media_root / detection.image.name).read_bytes() == data


def test_data_after_a_phone_jpegs_last_image_is_refused(client, stub_detector):
    response = client.post(UPLOAD, {"image": upload_file("phone.jpg", mpo_bytes() + b"<html></html>")})
    assert response.status_code == HTTPStatus.BAD_REQUEST and "extra data after the image" in response.content.decode()


def test_a_jpeg_with_a_narrow_flat_grey_border_is_accepted(client, stub_detector):
    image = Image.open(io.BytesIO(image_bytes("JPEG", (640, 480))))
    image.paste((128, 128, 128), (0, 430, 640, 480))  # a flat border a tenth deep, as a graphic might have
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    assert client.post(UPLOAD, {"image": upload_file("banner.jpg", buf.getvalue())}).status_code == HTTPStatus.FOUND
