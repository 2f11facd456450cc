"""Supported upload formats decode to the picture a viewer shows: orientation and colors.

Each variant of one four-colored landscape picture (``tests/uploads.py``:
JPEG, CMYK JPEG, PNG, grayscale, 16-bit grayscale, palette, alpha,
EXIF-rotated, animated GIF, WebP, BMP) must come out of ``load_image`` with
each quadrant's color where it belongs, and through the API with the
upright size. The reported bug, 16-bit grayscale pants served as a white
skirt, is checked end to end with the real tiny model: a 16-bit PNG and its
8-bit twin get the same garment and the same items.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from uploads import H, W, gray16, quadrant_means, variants

from eyepic.imaging import load_image, model_bytes
from serving.analyzer import Analyzer
from web import create_app

from fakes import FakeModels

VARIANTS = variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_supported_variant_decodes_upright_with_its_colors(name: str) -> None:
    data, shown, tolerance = VARIANTS[name]
    image = load_image(data)
    assert (image.mode, image.size) == ("RGB", (W, H))
    error = np.abs(quadrant_means(image) - quadrant_means(shown))
    assert error.max() <= tolerance, f"{name}: per-quadrant color error {error.round(1).tolist()}"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_what_the_model_gets_is_what_was_decoded(name: str) -> None:
    """The bytes sent to the model (the upload itself or a PNG of it) hold the decoded picture."""
    data, _, _ = VARIANTS[name]
    image = load_image(data)
    sent = Image.open(io.BytesIO(model_bytes(data, image)))
    assert sent.mode in {"RGB", "L"}, f"{name}: the model would decode a {sent.mode} image"
    assert np.abs(quadrant_means(sent) - quadrant_means(image)).max() <= 1


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    """Mid-grey at 16 bits (~32900) is mid-grey at 8 bits (128), not white."""
    image = load_image(gray16(Image.new("L", (8, 8), 128)))
    assert np.asarray(image).mean() == pytest.approx(128, abs=1)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_supported_variant_is_searchable_through_the_api(name: str, tmp_path, catalog_photos) -> None:
    from eyepic.settings import Settings
    from indexer.embedded import EmbeddedIndex

    from fakes import make_items

    settings = Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "models", default_k=3)
    index = EmbeddedIndex(settings.index_dir / "t.sqlite")
    index.upsert(make_items({"pants": catalog_photos["pants"]}))
    client = create_app(settings, analyzer=Analyzer(FakeModels(groups=("bottom",))), index=index).test_client()
    resp = client.post("/api/v1/search", data={"image": (io.BytesIO(VARIANTS[name][0]), "upload")},
                       content_type="multipart/form-data")
    index.close()
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["image"] == {"width": W, "height": H}


def test_sixteen_bit_pants_find_what_their_eight_bit_twin_finds(catalog_index_settings, catalog_photos) -> None:
    """The reported bug, with the real tiny model: same garment, colors and items for both bit depths."""
    grey = Image.open(catalog_photos["pants"][0]).convert("L")
    app = create_app(catalog_index_settings)
    client = app.test_client()
    answers = []
    for data in (encode_png(grey), gray16(grey)):
        resp = client.post("/api/v1/search", data={"image": (io.BytesIO(data), "pants.png")},
                           content_type="multipart/form-data")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        (garment,) = resp.get_json()["garments"]
        answers.append(garment)
    eight, sixteen = answers
    assert (sixteen["group"], sixteen["type"], sixteen["color"]) == (eight["group"], eight["type"], eight["color"])
    assert [i["id"] for i in sixteen["items"]] == [i["id"] for i in eight["items"]]
    assert [i["score"] for i in sixteen["items"]] == pytest.approx([i["score"] for i in eight["items"]], abs=2e-3)
    app.extensions["eyepic"].index.close()


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
