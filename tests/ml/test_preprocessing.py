"""One preprocessing path: training and serving produce the same crops."""

import io

import numpy as np
import pytest
from PIL import Image

from detector.ml.inference import preprocessing
from detector.ml.inference.faces import FULL_RANGE, SHORT_RANGE, FaceBox, _anchors
from detector.ml.inference.preprocessing import (
    FaceFinder,
    ImageDecodeError,
    decode,
    decode_image,
    prepare,
    square_region,
)
from tests.conftest import build_tiny_bundle, image_bytes


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
    from detector.ml.inference.predictor import Detector
    from detector.ml.training import crops

    path = tmp_path / "portrait.jpg"
    path.write_bytes(portrait_bytes)
    crops.init_worker()
    train_pixels, found = crops.crop_one((path, 32, 0.2, "resized"))
    served = Detector(tiny_bundle).prepare(decode_image(portrait_bytes))
    assert found and served.face_found
    np.testing.assert_array_equal(train_pixels, served.crops[0].pixels)
    # So do a model's native-resolution crops (the trace model's), served from a JPEG decoded reduced.
    native_bundle = build_tiny_bundle(tmp_path / "native", 32, crop_scale="native")
    train_pixels, found = crops.crop_one((path, 32, 0.2, "native"))
    served = Detector(native_bundle).prepare(decode(portrait_bytes, min_side=128))
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


def jpeg_of(image: Image.Image, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92, **save_kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def large_portrait():
    """The astronaut on a 1700x1300 photo: a face of about 350 px."""
    skimage_data = pytest.importorskip("skimage.data")
    canvas = Image.new("RGB", (1700, 1300), (90, 110, 80))
    canvas.paste(Image.fromarray(skimage_data.astronaut()).resize((1300, 1300), Image.BICUBIC), (200, 0))
    return jpeg_of(canvas)


def test_a_large_jpeg_is_decoded_reduced_and_keeps_its_full_size(large_portrait):
    decoded = decode(large_portrait, min_side=800)
    assert decoded.image.size == (850, 650) and (decoded.width, decoded.height) == (1700, 1300)
    assert decode(large_portrait, min_side=1000).image.size == (1700, 1300)  # half would be under 1000 px
    assert decode(large_portrait).image.size == (1700, 1300)
    png = image_bytes("PNG", size=(1700, 1300))
    assert decode(png, min_side=800).image.size == (1700, 1300)  # only JPEG decoders reduce while decoding


def test_a_reduced_decode_turns_the_full_size_with_the_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(jpeg_of(Image.new("RGB", (1700, 1300), (200, 0, 0)), exif=exif), min_side=800)
    assert decoded.image.size == (650, 850) and (decoded.width, decoded.height) == (1300, 1700)


def test_faces_found_on_a_reduced_decode_are_boxed_in_full_size_pixels(finder, large_portrait):
    reduced = prepare(decode(large_portrait, min_side=800), finder, size=224)
    full = prepare(decode(large_portrait), finder, size=224)
    assert reduced.face_found and full.face_found and (reduced.width, reduced.height) == (1700, 1300)
    a, b = reduced.crops[0].box, full.crops[0].box
    assert abs(a.x - b.x) < 0.03 * b.w and abs(a.w - b.w) < 0.03 * b.w
    difference = np.abs(reduced.crops[0].pixels.astype(int) - full.crops[0].pixels.astype(int)).mean()
    assert difference < 4  # of 255: the same face, from pixels decoded at half the size


def test_a_face_too_small_for_the_reduced_decode_is_cropped_from_a_full_one(large_portrait):
    decoded = decode(large_portrait, min_side=800)
    small = FaceBox(x=1000, y=400, w=120, h=120, score=0.9)  # its 168 px crop region is 84 px at half size
    crop = preprocessing._crop(decoded, small, 224, 0.2)
    assert list(decoded._larger) == [1]
    np.testing.assert_array_equal(crop, preprocessing._crop(decode(large_portrait), small, 224, 0.2))
    large = FaceBox(x=400, y=100, w=400, h=400, score=0.9)
    preprocessing._crop(decoded, large, 224, 0.2)
    assert list(decoded._larger) == [1]  # a large face needs no other decode


def test_a_box_around_several_faces_is_not_a_face():
    from detector.ml.inference.preprocessing import drop_group_boxes

    faces = [
        FaceBox(100, 100, 40, 40, 0.9),
        FaceBox(200, 100, 40, 40, 0.9),
        FaceBox(80, 80, 200, 200, 0.55),
        FaceBox(500, 100, 40, 40, 0.9),
    ]
    assert drop_group_boxes(faces) == [faces[0], faces[1], faces[3]]
    single = [FaceBox(10, 10, 100, 100, 0.9)]
    assert drop_group_boxes(single) == single


def test_a_native_crop_is_the_faces_centre_pixel_for_pixel_and_resized_crops_are_not(finder, portrait_bytes):
    from detector.ml.inference.preprocessing import NATIVE, CropSpec

    image = decode(portrait_bytes)
    native = CropSpec(64, 0.2, NATIVE)
    prepared = prepare(image, finder, size=224, also=(native,))
    crop = prepared.crops[0]
    full = np.asarray(image.image)

    def centre(box):
        x0, y0, x1, y1 = square_region(image.width, image.height, box, 0.2)
        cx, cy = round((x0 + x1) / 2 - 32), round((y0 + y1) / 2 - 32)
        return full[cy : cy + 64, cx : cx + 64]

    np.testing.assert_array_equal(crop.view(native), centre(crop.box))  # not one pixel resampled
    assert crop.pixels.shape == (224, 224, 3) and prepared.batch(native).shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(prepared.batch(), crop.pixels[None])
    # A JPEG decoded reduced for speed is decoded again at full size for the native crop.
    reduced = prepare(decode(portrait_bytes, min_side=128), finder, size=64, scale=NATIVE)
    assert reduced.face_found
    np.testing.assert_array_equal(reduced.crops[0].pixels, centre(reduced.crops[0].box))


def test_a_face_smaller_than_a_native_crop_is_enlarged_to_it(finder):
    from detector.ml.inference.preprocessing import NATIVE

    small = decode_image(image_bytes("PNG", size=(40, 30)))
    prepared = prepare(small, finder, size=64, scale=NATIVE)
    assert prepared.crops[0].pixels.shape == (64, 64, 3) and not prepared.face_found
    with pytest.raises(ValueError, match="unknown crop scale"):
        preprocessing.CropSpec(64, 0.2, "sideways")
