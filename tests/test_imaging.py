import io

import numpy as np
import pytest
from PIL import Image
from uploads import damaged_exif, unwritable_exif

from eyepic.imaging import ImageError, crop_encoded, encode_png, load_image, model_bytes, validate_box


@pytest.fixture
def real_jpeg(data_dir) -> bytes:
    return next((data_dir / "clothing-small" / "validation" / "dress").glob("*.jpg")).read_bytes()


def test_real_photo_loads_upright_rgb(real_jpeg):
    image = load_image(real_jpeg)
    assert image.mode == "RGB" and min(image.size) > 100


@pytest.mark.parametrize("data,match", [(b"", "empty"), (b"hello, not an image", "not an image")])
def test_non_images_are_rejected(data, match):
    with pytest.raises(ImageError, match=match):
        load_image(data)


def test_truncated_jpeg_is_rejected(real_jpeg):
    with pytest.raises(ImageError):
        load_image(real_jpeg[: len(real_jpeg) // 3])


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_damaged_exif_is_an_image_error(fmt):
    """Regression (found by test_fuzz_parsing.py): a PNG eXIf / WebP EXIF block that is not TIFF
    raised SyntaxError out of load_image, an HTTP 500."""
    with pytest.raises(ImageError, match="damaged"):
        load_image(damaged_exif(fmt))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_exif_block_pil_cannot_write_back_still_turns_the_photo_upright(fmt):
    """Regression (found by test_fuzz_parsing.py): exif_transpose rewrote the block and raised AttributeError."""
    image = load_image(unwritable_exif(fmt))
    assert image.size == (64, 48)  # stored 48x64, orientation 6


def test_pixel_bomb_is_rejected():
    out = io.BytesIO()
    Image.new("RGB", (3000, 3000)).save(out, format="PNG")
    with pytest.raises(ImageError, match="at most"):
        load_image(out.getvalue(), max_pixels=1_000_000)


def test_exif_orientation_is_applied():
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: stored landscape, shown portrait
    Image.new("RGB", (200, 100), "red").save(out, format="JPEG", exif=exif)
    assert load_image(out.getvalue()).size == (100, 200)


def test_large_photos_are_downscaled():
    out = io.BytesIO()
    Image.new("RGB", (4000, 2000)).save(out, format="JPEG")
    assert max(load_image(out.getvalue(), max_side=1000).size) == 1000


def test_crop_is_lossless_bmp_of_the_box():
    pixels = np.zeros((100, 100, 3), dtype=np.uint8)
    pixels[50:, 50:] = (10, 200, 30)
    crop = Image.open(io.BytesIO(crop_encoded(Image.fromarray(pixels), (0.5, 0.5, 1.0, 1.0))))
    assert crop.format == "BMP" and crop.size == (50, 50)
    assert (np.asarray(crop) == (10, 200, 30)).all()


def test_crops_decode_in_the_graph_to_the_same_pixels():
    """A BMP crop (odd width: padded rows) reads back in tf.io.decode_image as PIL wrote it;
    a crop too large for BMP stays a lossless PNG."""
    import tensorflow as tf

    from eyepic.imaging import BMP_CROP_MAX_BYTES

    pixels = np.random.default_rng(3).integers(0, 256, (101, 77, 3), dtype=np.uint8)
    data = crop_encoded(Image.fromarray(pixels), (0.1, 0.2, 0.9, 0.95))
    decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    assert data[:2] == b"BM"
    assert (decoded == np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))).all()
    side = int((BMP_CROP_MAX_BYTES / 3) ** 0.5) + 2
    assert crop_encoded(Image.new("RGB", (side, side)), (0, 0, 1, 1)).startswith(b"\x89PNG")


@pytest.mark.parametrize("box", [(0, 0, 1), (0.5, 0, 0.4, 1), (0, 0, 1.5, 1), ("a", 0, 1, 1), None])
def test_bad_boxes_are_rejected(box):
    with pytest.raises(ValueError):
        validate_box(box)


def test_color_shares_count_the_pixels_inside_the_box():
    from PIL import Image

    from eyepic.colors import COLOR_NAMES
    from eyepic.imaging import color_shares

    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:, :200] = (200, 20, 30)  # red left half
    pixels[:, 200:] = (40, 90, 200)  # blue right half
    image = Image.fromarray(pixels)
    left = color_shares(image, (0.0, 0.0, 0.5, 1.0))
    assert left[list(COLOR_NAMES).index("red")] == 1.0
    whole = color_shares(image)
    assert whole.sum() == pytest.approx(1.0)
    assert whole[list(COLOR_NAMES).index("red")] == pytest.approx(0.5, abs=0.02)
    assert whole[list(COLOR_NAMES).index("blue")] == pytest.approx(0.5, abs=0.02)


def test_color_shares_window_keeps_the_middle_of_the_box():
    from PIL import Image

    from eyepic.colors import COLOR_NAMES
    from eyepic.imaging import color_shares

    pixels = np.zeros((200, 200, 3), np.uint8)
    pixels[:, :] = (40, 90, 200)  # blue border
    pixels[25:175, 25:175] = (200, 20, 30)  # red middle: exactly the central 75 %
    image = Image.fromarray(pixels)
    red = list(COLOR_NAMES).index("red")
    assert color_shares(image, window=0.75)[red] == 1.0
    assert color_shares(image)[red] == pytest.approx(0.5625, abs=0.02)
    assert color_shares(image, (0.0, 0.0, 0.5, 0.5), window=0.5)[red] == 1.0  # about the box's own center
    with pytest.raises(ValueError, match="window"):
        color_shares(image, window=0.0)


def _graph_decode(encoded: bytes) -> np.ndarray:
    """What every export's serving_default decodes from encoded bytes."""
    import tensorflow as tf

    return tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()


def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


def test_an_upright_photo_goes_to_the_model_as_uploaded(real_jpeg):
    image = load_image(real_jpeg)
    assert model_bytes(real_jpeg, image) is real_jpeg
    # TF's and PIL's JPEG decoders round differently, by a level or two at most.
    seen = _graph_decode(real_jpeg).astype(int)
    assert seen.shape == np.asarray(image).shape and np.abs(seen - np.asarray(image)).mean() < 1.0


def test_a_grey_photo_goes_as_uploaded_and_decodes_to_the_same_rgb():
    pixels = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (40, 1))
    data = _saved(Image.fromarray(pixels, mode="L"), "PNG")
    image = load_image(data)
    assert model_bytes(data, image) is data
    assert (_graph_decode(data) == np.asarray(image)).all()


@pytest.mark.parametrize("make", [
    pytest.param(lambda: _saved(Image.new("RGB", (200, 100), "red"), "JPEG",
                                exif=_rotated_exif()), id="exif-rotated"),
    pytest.param(lambda: _saved(Image.new("RGB", (1200, 300), "blue"), "JPEG"), id="downscaled"),
    pytest.param(lambda: _saved(Image.new("RGBA", (60, 40), (200, 10, 10, 90)), "PNG"), id="alpha"),
    pytest.param(lambda: _saved(Image.new("RGB", (60, 40), "green"), "WEBP"), id="webp"),
    pytest.param(lambda: _saved(Image.new("P", (60, 40), 3), "GIF"), id="palette-gif"),
])
def test_other_photos_go_as_a_png_of_what_load_image_made(make):
    data = make()
    image = load_image(data, max_side=1000)
    sent = model_bytes(data, image)
    assert sent != data and Image.open(io.BytesIO(sent)).format == "PNG"
    assert sent == encode_png(image) and (_graph_decode(sent) == np.asarray(image)).all()
