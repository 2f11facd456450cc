import io

import numpy as np
import pytest
from PIL import Image

from eyepic.imaging import ImageError, crop_encoded, load_image, validate_box


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


def test_crop_is_lossless_png_of_the_box():
    pixels = np.zeros((100, 100, 3), dtype=np.uint8)
    pixels[50:, 50:] = (10, 200, 30)
    crop = Image.open(io.BytesIO(crop_encoded(Image.fromarray(pixels), (0.5, 0.5, 1.0, 1.0))))
    assert crop.format == "PNG" and crop.size == (50, 50)
    assert (np.asarray(crop) == (10, 200, 30)).all()


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
