"""The web API's contract: response shapes, parameter checks, problem JSON.

Real parts wherever they are cheap: the real ``Analyzer`` (so uploads go
through the real image validation), a real on-disk ``EmbeddedIndex`` holding
real catalog photos, real photos for bad inputs. The one seam is the model:
``FakeModels`` (tests/fakes.py) stands in for the ModelClient so these tests
run in seconds and can make the "detector" find several garments. The end-to-end tests with a
real trained model live in test_web_e2e.py.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.schema import Filters, Item
from eyepic.settings import Settings
from indexer.base import IndexUnavailable
from indexer.embedded import EmbeddedIndex
from serving.analyzer import Analyzer
from web import create_app

from fakes import BrokenIndex, FakeModels, make_items

PROBLEM = "application/problem+json"


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "models", default_k=5, max_k=20)


@pytest.fixture
def index(settings: Settings, catalog_photos: dict[str, list[Path]]) -> Iterator[EmbeddedIndex]:
    idx = EmbeddedIndex(settings.index_dir / "test.sqlite")
    idx.upsert(make_items(catalog_photos))
    yield idx
    idx.close()


@pytest.fixture
def models() -> FakeModels:
    return FakeModels()


@pytest.fixture
def app(settings: Settings, index: EmbeddedIndex, models: FakeModels) -> Flask:
    return create_app(settings, analyzer=Analyzer(models), index=index)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, image: bytes | None = None, filename: str = "photo.jpg", **fields: object):
    data: dict[str, object] = {k: v for k, v in fields.items()}
    if image is not None:
        data["image"] = (io.BytesIO(image), filename)
    return client.post("/api/v1/search", data=data, content_type="multipart/form-data")


def assert_problem(resp, status: int, kind: str | None = None, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == PROBLEM
    body = resp.get_json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if kind:
        assert body["type"] == f"urn:eyepic:problem:{kind}"
    if param:
        assert param in [p["name"] for p in body["invalid_params"]], body
    assert "Traceback" not in resp.get_data(as_text=True)
    return body


# ---------------------------------------------------------------- search
def test_search_shape_and_own_group_default(client: FlaskClient, photo: bytes) -> None:
    resp = post(client, photo)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    with Image.open(io.BytesIO(photo)) as image:
        assert body["image"] == {"width": image.width, "height": image.height}
    assert body["detector_used"] is False
    assert body["model_version"] == "classifier-3"
    (garment,) = body["garments"]
    assert garment["index"] == 0
    assert garment["box"] == [0.0, 0.0, 1.0, 1.0]
    assert (garment["group"], garment["type"], garment["color"]) == ("top", "t-shirt", "black")
    assert garment["detected"] is False
    assert set(garment["scores"]) >= {"group", "type", "color"}
    assert garment["filters"] == {"group": ["top"]}
    items = garment["items"]
    assert len(items) == 5  # default_k
    assert all(i["group"] == "top" for i in items)
    first = items[0]
    assert {"id", "score", "group", "type", "color", "title", "image_url"} <= first.keys()
    assert "image_path" not in first and "embedding" not in first
    assert first["image_url"] == f"/api/v1/items/{first['id']}/image"
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)


def test_user_group_or_type_replaces_the_own_group_default(client: FlaskClient, photo: bytes) -> None:
    body = post(client, photo, group="bottom").get_json()
    items = body["garments"][0]["items"]
    assert items and {i["group"] for i in items} == {"bottom"}
    assert body["garments"][0]["filters"] == {"group": ["bottom"]}
    body = post(client, photo, type="dress").get_json()
    assert {i["type"] for i in body["garments"][0]["items"]} == {"dress"}


def test_filters_repeatable_and_comma_separated(client: FlaskClient, photo: bytes) -> None:
    resp = client.post(
        "/api/v1/search",
        data={"image": (io.BytesIO(photo), "p.jpg"), "color": ["black", "WHITE, black"], "k": "20"},
        content_type="multipart/form-data",
    )
    body = resp.get_json()
    assert body["query"]["filters"] == {"color": ["black", "white"]}
    items = body["garments"][0]["items"]
    assert items and {i["color"] for i in items} <= {"black", "white"}
    assert {i["group"] for i in items} == {"top"}


def test_k_limits_results(client: FlaskClient, photo: bytes) -> None:
    body = post(client, photo, k="1").get_json()
    assert len(body["garments"][0]["items"]) == 1


@pytest.mark.parametrize("k", ["0", "21", "-3", "ten", "2.5"])
def test_k_out_of_range(client: FlaskClient, photo: bytes, k: str) -> None:
    assert_problem(post(client, photo, k=k), 400, "invalid-parameter", "k")


@pytest.mark.parametrize(("field", "value"), [("color", "purple"), ("group", "socks"), ("type", "tuxedo")])
def test_unknown_filter_value(client: FlaskClient, photo: bytes, field: str, value: str) -> None:
    body = assert_problem(post(client, photo, **{field: value}), 400, "invalid-parameter", field)
    assert value in body["detail"]


def test_all_bad_fields_reported_at_once_and_before_the_model(
    client: FlaskClient, models: FakeModels
) -> None:
    resp = post(client, None, k="0", color="purple", box="1,2")
    body = assert_problem(resp, 400, "invalid-parameter")
    assert {p["name"] for p in body["invalid_params"]} == {"image", "k", "color", "box"}
    assert models.calls == []


@pytest.mark.parametrize("box", ["0.1,0.2,0.3", "0.5,0.5,0.2,0.9", "a,b,c,d", "0,0,1.5,1", "0.2,0.2,0.2,0.4"])
def test_bad_box(client: FlaskClient, photo: bytes, box: str) -> None:
    assert_problem(post(client, photo, box=box), 400, "invalid-parameter", "box")


def test_user_box_analyzes_only_that_region(client: FlaskClient, photo: bytes, models: FakeModels) -> None:
    body = post(client, photo, box="0.1,0.2,0.6,0.9").get_json()
    (garment,) = body["garments"]
    assert garment["box"] == [0.1, 0.2, 0.6, 0.9]
    assert body["user_box"] is True
    assert ("detector", 1) not in models.calls  # a user's box skips detection
    assert garment["items"]


def test_box_and_garment_together_rejected(client: FlaskClient, photo: bytes) -> None:
    assert_problem(post(client, photo, box="0,0,1,1", garment="0"), 400, "invalid-parameter", "garment")


# -- several garments (detector present) ----------------------------------
@pytest.fixture
def multi_client(settings: Settings, index: EmbeddedIndex) -> FlaskClient:
    models = FakeModels(groups=("top", "bottom"), detections=[(0.2, 0.05, 0.8, 0.5), (0.25, 0.5, 0.75, 0.98)])
    return create_app(settings, analyzer=Analyzer(models), index=index).test_client()


def test_every_detected_garment_searches_its_own_group(multi_client: FlaskClient, photo: bytes) -> None:
    body = post(multi_client, photo).get_json()
    assert body["detector_used"] is True
    top, bottom = body["garments"]
    assert [top["index"], bottom["index"]] == [0, 1]
    assert top["box"] == [0.2, 0.05, 0.8, 0.5] and top["detected"] is True
    assert {i["group"] for i in top["items"]} == {"top"}
    assert {i["group"] for i in bottom["items"]} == {"bottom"}


def test_garment_index_searches_just_that_one(multi_client: FlaskClient, photo: bytes) -> None:
    body = post(multi_client, photo, garment="1").get_json()
    (garment,) = body["garments"]
    assert garment["index"] == 1 and garment["group"] == "bottom"


@pytest.mark.parametrize("garment", ["2", "-1", "first"])
def test_garment_index_out_of_range(multi_client: FlaskClient, photo: bytes, garment: str) -> None:
    assert_problem(post(multi_client, photo, garment=garment), 400, "invalid-parameter", "garment")


# -- bad uploads (real bytes) ----------------------------------------------
def test_missing_image_field(client: FlaskClient) -> None:
    body = assert_problem(post(client, None, k="3"), 400, "invalid-parameter", "image")
    assert "image" in body["detail"]
    assert_problem(client.post("/api/v1/search", json={"image": "x"}), 415, "unsupported-media-type", "Content-Type")


def test_text_file_is_not_an_image(client: FlaskClient) -> None:
    text = Path(__file__).read_bytes()
    # the name says JPEG, the bytes say text: refused as a type Eyepic does not read, with the ones it does
    body = assert_problem(post(client, text, filename="notes.jpg"), 415, "unsupported-media-type", "image")
    assert "not an image" in body["detail"] and "image/jpeg" in body["supported"]


def test_truncated_real_jpeg(client: FlaskClient, catalog_photos) -> None:
    data = catalog_photos["dress"][1].read_bytes()
    body = assert_problem(post(client, data[: len(data) // 2]), 422, "invalid-image")
    assert "truncated" in body["detail"]


def test_empty_upload(client: FlaskClient) -> None:
    assert_problem(post(client, b""), 422, "invalid-image")


def test_upload_over_the_limit(index: EmbeddedIndex, tmp_path: Path, photo: bytes) -> None:
    settings = Settings(var_dir=tmp_path / "var", max_upload_bytes=len(photo) - 1)
    client = create_app(settings, analyzer=Analyzer(FakeModels()), index=index).test_client()
    body = assert_problem(post(client, photo), 413, "upload-too-large", "image")
    assert body["max_upload_bytes"] == len(photo) - 1
    # far over: werkzeug refuses the body before the handler reads it
    assert_problem(post(client, photo * 4), 413, "upload-too-large")
    assert post(client, photo[: len(photo) // 2]).status_code == 422  # under the limit: parsed


def test_image_with_too_many_pixels(index: EmbeddedIndex, tmp_path: Path, photo: bytes) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    client = create_app(
        settings, analyzer=Analyzer(FakeModels(), max_image_pixels=1000), index=index
    ).test_client()
    assert_problem(post(client, photo), 422, "invalid-image")


def test_model_unavailable_is_503_with_retry_after(
    settings: Settings, index: EmbeddedIndex, photo: bytes
) -> None:
    client = create_app(settings, analyzer=Analyzer(FakeModels(available=False)), index=index).test_client()
    resp = post(client, photo)
    assert_problem(resp, 503, "model-unavailable")
    assert int(resp.headers["Retry-After"]) > 0


def test_index_down_is_503(settings: Settings, photo: bytes) -> None:
    app = create_app(
        settings, analyzer=Analyzer(FakeModels()), index=BrokenIndex(IndexUnavailable("connection refused"))
    )
    resp = post(app.test_client(), photo)
    assert_problem(resp, 503, "index-unavailable")
    assert "Retry-After" in resp.headers


def test_unexpected_error_is_logged_and_a_bare_500(
    settings: Settings, photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        settings, analyzer=Analyzer(FakeModels()), index=BrokenIndex(RuntimeError("secret internals"))
    )
    with caplog.at_level(logging.ERROR):
        resp = post(app.test_client(), photo)
    body = assert_problem(resp, 500, "internal-error")
    assert "secret internals" not in resp.get_data(as_text=True)
    assert "secret internals" in caplog.text and body["instance"] == "/api/v1/search"


# ---------------------------------------------------------------- items
def test_get_item(client: FlaskClient, index: EmbeddedIndex) -> None:
    item_id = sorted(index.ids())[0]
    resp = client.get(f"/api/v1/items/{item_id}")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["id"] == item_id and "image_path" not in body and "embedding" not in body
    assert body["image_url"].endswith("/image") and body["similar_url"].endswith("/similar")


def test_unknown_item_is_404(client: FlaskClient) -> None:
    for url in ("/api/v1/items/nope", "/api/v1/items/nope/similar", "/api/v1/items/a/b/image"):
        assert_problem(client.get(url), 404, "item-not-found")


def test_similar_items(client: FlaskClient, index: EmbeddedIndex) -> None:
    item = index.get(next(i for i in sorted(index.ids()) if "/shirt/" in i))
    assert item is not None
    body = client.get(f"/api/v1/items/{item.id}/similar?k=4").get_json()
    assert body["item"]["id"] == item.id
    ids = [i["id"] for i in body["items"]]
    assert item.id not in ids and 0 < len(ids) <= 4
    assert {i["group"] for i in body["items"]} == {item.group}
    body = client.get(f"/api/v1/items/{item.id}/similar?group=bottom&color=black").get_json()
    assert body["items"] and all(i["group"] == "bottom" and i["color"] == "black" for i in body["items"])


def test_similar_validates_params(client: FlaskClient, index: EmbeddedIndex) -> None:
    item_id = sorted(index.ids())[0]
    body = assert_problem(client.get(f"/api/v1/items/{item_id}/similar?k=999&color=plaid"), 400)
    assert {p["name"] for p in body["invalid_params"]} == {"k", "color"}


def test_item_image_served_from_the_index_path_only(
    client: FlaskClient, index: EmbeddedIndex, catalog_photos, tmp_path: Path
) -> None:
    item = index.get(sorted(index.ids())[0])
    assert item is not None
    resp = client.get(f"/api/v1/items/{item.id}/image")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert resp.data == Path(item.image_path).read_bytes()
    assert "max-age" in resp.headers["Cache-Control"]
    # an item whose file is gone: 404, not a 500
    index.upsert(
        [
            Item(
                id="gone",
                embedding=item.embedding,
                group="top",
                type="shirt",
                color="black",
                image_path=str(tmp_path / "missing.jpg"),
            )
        ]
    )
    assert_problem(client.get("/api/v1/items/gone/image"), 404, "image-not-found")
    # a client cannot name a path
    assert client.get("/api/v1/items/..%2F..%2Fetc%2Fpasswd/image").status_code == 404


# ---------------------------------------------------------------- meta, health, routing
def test_taxonomy(client: FlaskClient, index: EmbeddedIndex) -> None:
    body = client.get("/api/v1/taxonomy").get_json()
    groups = {g["name"]: g for g in body["groups"]}
    assert groups["top"]["ko"] == "상의" and groups["top"]["en"] == "Top"
    assert groups["top"]["count"] == index.count(Filters(group=("top",)))
    assert [c["name"] for c in body["colors"]] == list(COLOR_NAMES)
    assert all(c["hex"].startswith("#") and c["ko"] for c in body["colors"])
    assert {t["name"] for t in body["types"]} == set(taxonomy.TYPE_NAMES)
    assert sum(g["count"] for g in body["groups"]) == body["total"] == index.count()
    assert body["limits"]["max_k"] == 20


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.get_json()["status"] == "ready"


def test_not_ready_without_model_or_index(settings: Settings, index: EmbeddedIndex) -> None:
    app = create_app(settings, analyzer=Analyzer(FakeModels(available=False)), index=index)
    body = assert_problem(app.test_client().get("/readyz"), 503, "not-ready")
    assert body["checks"]["index"] == "ok" and body["checks"]["model"] != "ok"
    app = create_app(settings, analyzer=Analyzer(FakeModels()), index=BrokenIndex(IndexUnavailable("down")))
    client = app.test_client()
    body = assert_problem(client.get("/readyz"), 503, "not-ready")
    assert body["checks"]["index"] == "down"
    assert client.get("/healthz").status_code == 200


def test_unknown_api_route_and_method(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/nothing"), 404, "not-found")
    resp = client.get("/api/v1/search")
    body = assert_problem(resp, 405)
    assert body["type"] == "about:blank" and "POST" in resp.headers["Allow"]


def test_page_and_static_assets(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    for needle in ('id="file"', 'capture="environment"', 'id="photo"', 'id="error"', 'id="results"'):
        assert needle in html
    for asset in ("/static/app.js", "/static/app.css"):
        assert asset in html
        assert client.get(asset).status_code == 200
    assert "http://" not in html and "https://" not in html  # no CDN: works offline


def test_factory_builds_from_settings_without_a_model(tmp_path: Path, photo: bytes) -> None:
    """No deps given: the real model client and index come from settings; no model yet means 503."""
    settings = Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "no-models")
    client = create_app(settings).test_client()
    assert client.get("/healthz").status_code == 200
    assert_problem(client.get("/readyz"), 503, "not-ready")
    assert_problem(post(client, photo), 503, "model-unavailable")
    assert client.get("/api/v1/taxonomy").get_json()["total"] == 0
