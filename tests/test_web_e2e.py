"""The API end to end with real parts: a real trained tiny model, a real on-disk index.

``catalog_index_settings`` (tests/conftest.py) is a Settings whose model_dir
holds a tiny classifier trained on real photos and whose embedded index
already holds real catalog photos indexed through the real analyzer. Nothing
here is faked: the app builds its own model client, analyzer and index from
those settings, exactly as ``eyepic serve`` does.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.schema import Item
from eyepic.settings import Settings
from web import create_app

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def app(catalog_index_settings: Settings) -> Iterator[Flask]:
    app = create_app(catalog_index_settings)
    yield app
    app.extensions["eyepic"].index.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def indexed(app: Flask) -> list[Item]:
    index = app.extensions["eyepic"].index
    items = [index.get(i) for i in sorted(index.ids())]
    assert len(items) >= 10, "the catalog fixture should hold real photos"
    return [i for i in items if i is not None]


def search(client: FlaskClient, image: bytes, **fields: object):
    data: dict[str, object] = {"image": (io.BytesIO(image), "photo.jpg"), **fields}
    return client.post("/api/v1/search", data=data, content_type="multipart/form-data")


def test_ready_with_a_real_model_and_index(client: FlaskClient, indexed: list[Item]) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["items"] == len(indexed) and body["model_version"]


def test_search_with_a_catalog_photo_finds_that_item_first(client: FlaskClient, indexed: list[Item]) -> None:
    """The same photo embeds to the same vector, so it must come back first with score ~1."""
    for item in indexed[:: max(1, len(indexed) // 5)]:
        image = Path(item.image_path).read_bytes()
        resp = search(client, image, group=item.group, k="3")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        (garment,) = body["garments"]
        top = garment["items"][0]
        assert top["id"] == item.id
        assert top["score"] > 0.99
        assert body["model_version"]


def test_search_response_shape_and_default_group(client: FlaskClient, indexed: list[Item]) -> None:
    body = search(client, Path(indexed[0].image_path).read_bytes()).get_json()
    assert body["image"]["width"] > 0 and body["image"]["height"] > 0
    for garment in body["garments"]:
        assert garment["group"] in taxonomy.GROUP_NAMES
        assert garment["type"] in taxonomy.TYPE_NAMES
        assert garment["color"] in COLOR_NAMES
        assert all(0 <= v <= 1 for v in garment["box"])
        assert {i["group"] for i in garment["items"]} <= {garment["group"]}
        for item in garment["items"]:
            assert {"id", "score", "group", "type", "color", "title", "image_url"} <= item.keys()
            assert "image_path" not in item


def test_street_photo(client: FlaskClient, data_dir: Path) -> None:
    """A CCP street photo (not in the catalog): garments with boxes and results."""
    photo = (data_dir / "ccp" / "photos" / "0002.jpg").read_bytes()
    resp = search(client, photo, k="6")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["garments"]
    for i, garment in enumerate(body["garments"]):
        assert garment["index"] == i
    # the user's own box: just that region, one garment
    body = search(client, photo, box="0.2,0.15,0.8,0.55", k="6").get_json()
    (garment,) = body["garments"]
    assert garment["box"] == [0.2, 0.15, 0.8, 0.55] and body["user_box"] is True
    # an index past the garments found
    n = len(search(client, photo).get_json()["garments"])
    resp = search(client, photo, garment=str(n))
    assert resp.status_code == 400 and resp.mimetype == PROBLEM


def test_bad_uploads_with_the_real_analyzer(client: FlaskClient, indexed: list[Item]) -> None:
    data = Path(indexed[0].image_path).read_bytes()
    for bad, status in ((data[: len(data) // 3], 422), (b"name,price\nshirt,10\n", 415)):
        resp = search(client, bad)
        assert resp.status_code == status and resp.mimetype == PROBLEM, resp.get_data(as_text=True)


def test_item_similar_and_image(client: FlaskClient, indexed: list[Item]) -> None:
    item = indexed[1]
    assert client.get(f"/api/v1/items/{item.id}").get_json()["id"] == item.id
    image = client.get(f"/api/v1/items/{item.id}/image")
    assert image.status_code == 200 and image.data == Path(item.image_path).read_bytes()
    body = client.get(f"/api/v1/items/{item.id}/similar?k=5").get_json()
    assert item.id not in [i["id"] for i in body["items"]]
    assert {i["group"] for i in body["items"]} <= {item.group}
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_taxonomy_counts_match_the_index(client: FlaskClient, indexed: list[Item]) -> None:
    body = client.get("/api/v1/taxonomy").get_json()
    assert body["total"] == len(indexed)
    by_group: dict[str, int] = {}
    for item in indexed:
        by_group[item.group] = by_group.get(item.group, 0) + 1
    assert {g["name"]: g["count"] for g in body["groups"] if g["count"]} == by_group
