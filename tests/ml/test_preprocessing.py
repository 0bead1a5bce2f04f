"""One preprocessing path: training and serving produce the same crops."""

import io

import numpy as np
import pytest
from PIL import Image

from detector.ml.faces import FULL_RANGE, SHORT_RANGE, FaceBox, _anchors
from detector.ml.preprocessing import FaceFinder, ImageDecodeError, decode_image, prepare, square_region
from tests.conftest import image_bytes


@pytest.fixture(scope="module")
def finder():
    return FaceFinder(num_threads=1)


@pytest.fixture(scope="module")
def portrait_bytes():
    skimage_data = pytest.importorskip("skimage.data")
    buf = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_anchor_counts_match_the_blazeface_models():
    assert len(_anchors(SHORT_RANGE)) == 896
    assert len(_anchors(FULL_RANGE)) == 2304


def test_a_face_is_found_on_a_portrait(finder, portrait_bytes):
    faces = finder(decode_image(portrait_bytes))
    assert len(faces) == 1
    face = faces[0]
    # The astronaut's face sits around x 160-260, y 40-170 in the 512 px image.
    assert 130 < face.x + face.w / 2 < 290 and 40 < face.y + face.h / 2 < 170
    assert 60 < face.w < 200


def test_no_face_falls_back_to_the_centre_square(finder):
    image = decode_image(image_bytes("PNG", size=(300, 200)))
    prepared = prepare(image, finder, size=64)
    assert not prepared.face_found
    assert len(prepared.crops) == 1 and prepared.crops[0].box is None
    assert prepared.crops[0].pixels.shape == (64, 64, 3)
    assert square_region(300, 200, None, 0.2) == (50, 0, 250, 200)


def test_face_crop_is_square_with_margin_and_stays_inside_the_image():
    box = FaceBox(x=10, y=10, w=100, h=80, score=0.9)
    x0, y0, x1, y1 = square_region(400, 300, box, margin=0.2)
    assert x1 - x0 == y1 - y0 == 140
    assert x0 == 0 and y0 == 0  # shifted inside rather than padded
    big = FaceBox(x=0, y=0, w=300, h=300, score=0.9)
    assert square_region(320, 240, big, 0.2) == (30, 0, 270, 240)  # centred on the face, clipped to the image


def test_training_and_serving_crop_identically(tmp_path, portrait_bytes, tiny_bundle):
    from detector.ml import training
    from detector.ml.predictor import Detector

    path = tmp_path / "portrait.jpg"
    path.write_bytes(portrait_bytes)
    training._init_worker()
    train_pixels, found = training._crop_one((path, 32, 0.2))
    served = Detector(tiny_bundle).prepare(decode_image(portrait_bytes))
    assert found and served.face_found
    np.testing.assert_array_equal(train_pixels, served.crops[0].pixels)


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue()).size == (20, 40)


@pytest.mark.parametrize("data", [b"", b"not an image at all", image_bytes("JPEG")[:400]])
def test_undecodable_input_raises_a_clear_error(data):
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_decode_refuses_too_many_pixels():
    with pytest.raises(ImageDecodeError, match="pixels"):
        decode_image(image_bytes("PNG", size=(100, 100)), max_pixels=5000)


def test_a_box_around_several_faces_is_not_a_face():
    from detector.ml.preprocessing import drop_group_boxes

    faces = [
        FaceBox(100, 100, 40, 40, 0.9),
        FaceBox(200, 100, 40, 40, 0.9),
        FaceBox(80, 80, 200, 200, 0.55),
        FaceBox(500, 100, 40, 40, 0.9),
    ]
    assert drop_group_boxes(faces) == [faces[0], faces[1], faces[3]]
    single = [FaceBox(10, 10, 100, 100, 0.9)]
    assert drop_group_boxes(single) == single
