"""The same requests through HTTP and gRPC get the same answers and the same refusals.

Both APIs are adapters over one ``services.search.SearchService``; this
suite holds them to it: one Analyzer (with ``FakeModels``, so it runs in
seconds, detector included) and one EmbeddedIndex of real catalog photos
behind a Flask test client and a real gRPC server, and each request sent
both ways. Answers are compared field by field (garments, boxes, labels,
effective filters, item ids and scores); refusals by the fields they name
and why.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from devtools.harness import free_port
from eyepic.settings import Settings
from eyepic.v1 import recommender_pb2 as pb
from eyepic.v1 import recommender_pb2_grpc
from grpcapi.server import build_grpc_server
from indexer.embedded import EmbeddedIndex
from serving.analyzer import Analyzer
from taste.events import Event
from web import create_app

from fakes import FakeModels, make_items

FILTERS = ("group", "type", "color", "shop")


@pytest.fixture(scope="module")
def apis(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("conformance")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=5, max_k=20)
    index = EmbeddedIndex(settings.index_dir / "test.sqlite")
    items = make_items(catalog_photos)
    for i, item in enumerate(items):  # two shops, so the shop filter has something to choose
        item.shop = "Shop A" if i % 2 else "shop-b"
    index.upsert(items)
    models = FakeModels(groups=("top", "bottom"), detections=[(0.2, 0.05, 0.8, 0.5), (0.25, 0.5, 0.75, 0.98)])
    analyzer = Analyzer(models)
    app = create_app(settings, analyzer=analyzer, index=index)
    server, port = build_grpc_server(settings, analyzer, app.extensions["eyepic"].index,
                                     app.extensions["eyepic_metrics"], address=f"127.0.0.1:{free_port()}",
                                     recommend=app.extensions["eyepic"].recommend)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield {"http": app.test_client(), "grpc": recommender_pb2_grpc.RecommenderStub(channel), "items": items,
               "events": app.extensions["eyepic"].events}
    finally:
        channel.close()
        server.stop(grace=None)
        index.close()


# -- one request, both transports ------------------------------------------------------------
def http_search(apis: dict[str, Any], image: bytes | None, **fields: Any) -> Any:
    data: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "box":
            data["box"] = ",".join(str(v) for v in value)
        elif name in FILTERS:
            data[name] = list(value)
        else:
            data[name] = str(value)
    if image is not None:
        data["image"] = (io.BytesIO(image), "photo.jpg")
    return apis["http"].post("/api/v1/search", data=data, content_type="multipart/form-data")


def grpc_search(apis: dict[str, Any], image: bytes | None, **fields: Any) -> Any:
    request = pb.SearchRequest(image=image or b"", k=int(fields.get("k", 0)),
                               filters=pb.Filters(**{n: list(fields.get(n, ())) for n in FILTERS}))
    if "box" in fields:
        x0, y0, x1, y1 = fields["box"]
        request.box.CopyFrom(pb.Box(x0=x0, y0=y0, x1=x1, y1=y1))
    if "garment" in fields:
        request.garment = int(fields["garment"])
    return apis["grpc"].Search(request)


def http_answer(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{
        "index": g["index"], "box": [round(v, 5) for v in g["box"]], "group": g["group"], "type": g["type"],
        "color": g["color"], "filters": {k: list(v) for k, v in g["filters"].items()},
        "items": [(i["id"], round(i["score"], 4)) for i in g["items"]],
    } for g in body["garments"]]


def grpc_answer(response: Any) -> list[dict[str, Any]]:
    return [{
        "index": g.index, "box": [round(v, 5) for v in (g.box.x0, g.box.y0, g.box.x1, g.box.y1)],
        "group": g.group, "type": g.type, "color": g.color,
        "filters": {n: list(getattr(g.filters, n)) for n in FILTERS if getattr(g.filters, n)},
        "items": [(i.id, round(i.score, 4)) for i in g.items],
    } for g in response.garments]


def grpc_details(invalid_params: list[dict[str, str]]) -> str:
    """The INVALID_ARGUMENT details gRPC gives for the fields HTTP names (filters as ``filters.<name>``)."""
    return "; ".join(f"{'filters.' if p['name'] in FILTERS else ''}{p['name']}: {p['reason']}" for p in invalid_params)


@pytest.mark.parametrize("fields", [
    {},
    {"k": 3},
    {"color": ["black", "White"]},
    {"group": ["bottom"], "k": 4},
    {"type": ["t-shirt", "jeans"]},
    {"shop": ["Shop A"]},
    {"garment": 1},
    {"box": (0.125, 0.25, 0.625, 0.875), "k": 2},  # exact in float32, as gRPC sends boxes
])
def test_search_answers_match(apis, photo, fields):
    http = http_search(apis, photo, **fields)
    assert http.status_code == 200, http.get_json()
    body = http.get_json()
    response = grpc_search(apis, photo, **fields)
    assert http_answer(body) == grpc_answer(response)
    assert (body["image"]["width"], body["image"]["height"]) == (response.width, response.height)
    assert body["detector_used"] == response.detector_used
    assert body["model_version"] == response.model_version


def test_the_shop_filter_works_on_both(apis, photo):
    body = http_search(apis, photo, shop=["Shop A"], k=20).get_json()
    shops = {item["shop"] for g in body["garments"] for item in g["items"]}
    assert shops == {"Shop A"}


@pytest.mark.parametrize("image, fields", [
    (None, {}),
    (b"photo", {"k": 99}),
    (b"photo", {"color": ["plaid"], "group": ["socks"]}),
    (b"photo", {"box": (0.8, 0.1, 0.2, 0.9)}),
    (b"photo", {"box": (0.1, 0.1, 0.5, 0.5), "garment": 0}),
    (b"photo", {"garment": 7}),
    (None, {"k": 50, "type": ["tuxedo"]}),
])
def test_refusals_match(apis, photo, image, fields):
    image = photo if image == b"photo" else image
    http = http_search(apis, image, **fields)
    assert http.status_code == 400
    with pytest.raises(grpc.RpcError) as err:
        grpc_search(apis, image, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == grpc_details(http.get_json()["invalid_params"])


def test_not_an_image_is_refused_by_both(apis):
    assert apis["http"].post("/api/v1/search", data={"image": (io.BytesIO(b"GIF89a-no"), "x.gif")},
                             content_type="multipart/form-data").status_code == 422
    with pytest.raises(grpc.RpcError) as err:
        grpc_search(apis, b"GIF89a-no")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("fields", [{}, {"k": 2}, {"color": ["black"]}, {"group": ["bottom"], "k": 3}])
def test_similar_items_match(apis, fields):
    item = apis["items"][0]
    query = {n: v for n, v in fields.items()}
    http = apis["http"].get(f"/api/v1/items/{item.id}/similar", query_string=query)
    assert http.status_code == 200
    body = http.get_json()
    response = apis["grpc"].SimilarItems(pb.SimilarItemsRequest(
        item_id=item.id, k=int(fields.get("k", 0)), filters=pb.Filters(**{n: fields.get(n, []) for n in FILTERS})))
    assert [(i["id"], round(i["score"], 4)) for i in body["items"]] == [(i.id, round(i.score, 4))
                                                                        for i in response.items]
    assert body["filters"] == {n: list(getattr(response.filters, n)) for n in FILTERS if getattr(response.filters, n)}
    assert body["item"]["id"] == response.item.id == item.id


def test_unknown_item_and_bad_similar_request_match(apis):
    http = apis["http"].get("/api/v1/items/no-such-item/similar")
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].SimilarItems(pb.SimilarItemsRequest(item_id="no-such-item"))
    assert http.status_code == 404 and err.value.code() == grpc.StatusCode.NOT_FOUND
    assert http.get_json()["detail"] == err.value.details()

    item = apis["items"][0]
    http = apis["http"].get(f"/api/v1/items/{item.id}/similar", query_string={"k": 0, "color": "plaid"})
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].SimilarItems(pb.SimilarItemsRequest(item_id=item.id, k=-1, filters=pb.Filters(color=["plaid"])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    names = [p["name"] for p in http.get_json()["invalid_params"]]
    assert names == ["k", "color"] and err.value.details().startswith("k: must be from 1 to")


# -- recommendations and personalization -------------------------------------------------------
def add_events(apis: dict[str, Any], user: str, kinds_items: list[tuple[str, int]]) -> None:
    for n, (kind, i) in enumerate(kinds_items):
        apis["events"].add(Event(user_id=user, kind=kind, item_id=apis["items"][i].id, at=1_000.0 + n,
                                 event_id=f"{user}-{n}"))


def http_recommendations(body: dict[str, Any]) -> dict[str, Any]:
    return {"personal": body["personal"], "note": body["note"], "filters": body["query"]["filters"],
            "items": [(i["id"], round(i["score"], 4), i["reason"], i["cluster"]) for i in body["items"]],
            "clusters": [(c["id"], round(c["importance"], 4), c["item_id"]) for c in body["clusters"]]}


def grpc_recommendations(response: Any) -> dict[str, Any]:
    return {"personal": response.personal, "note": response.note,
            "filters": {n: list(getattr(response.filters, n)) for n in FILTERS if getattr(response.filters, n)},
            "items": [(r.item.id, round(r.item.score, 4), r.reason, r.cluster if r.HasField("cluster") else None)
                      for r in response.items],
            "clusters": [(c.id, round(c.importance, 4), c.item_id) for c in response.clusters]}


@pytest.mark.parametrize("user, fields", [
    ("conf-new", {}),  # unknown: the cold start, not NOT_FOUND
    ("conf-taste", {}),
    ("conf-taste", {"k": 3}),
    ("conf-taste", {"color": ["black"], "group": ["top"]}),
    ("conf-dislikes", {"k": 6}),
])
def test_recommendations_match(apis, user, fields):
    add_events(apis, "conf-taste", [("like", 0), ("like", 1), ("click", 12), ("like", 13)])
    add_events(apis, "conf-dislikes", [("dislike", 2)])
    http = apis["http"].get(f"/api/v1/users/{user}/recommendations", query_string=fields)
    assert http.status_code == 200, http.get_json()
    body = http.get_json()
    response = apis["grpc"].Recommend(pb.RecommendRequest(
        user_id=user, k=int(fields.get("k", 0)), filters=pb.Filters(**{n: fields.get(n, []) for n in FILTERS})))
    assert http_recommendations(body) == grpc_recommendations(response)
    assert body["items"] and body["personal"] is (user == "conf-taste")
    assert all(item["reason"] for item in body["items"])


def test_recommendation_refusals_match(apis):
    http = apis["http"].get("/api/v1/users/someone/recommendations", query_string={"k": -1, "color": "plaid"})
    assert http.status_code == 400
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].Recommend(pb.RecommendRequest(user_id="someone", k=-1, filters=pb.Filters(color=["plaid"])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == grpc_details(http.get_json()["invalid_params"])
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].Recommend(pb.RecommendRequest(user_id=""))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("user_id:")


def test_personalized_search_and_similar_match(apis, photo):
    item = apis["items"][0]
    plain = apis["http"].get(f"/api/v1/items/{item.id}/similar", query_string={"k": 20}).get_json()["items"]
    disliked = plain[0]["id"]
    add_events(apis, "conf-search", [("like", 5), ("like", 6)])
    apis["events"].add(Event(user_id="conf-search", kind="dislike", item_id=disliked, at=2_000.0,
                             event_id="conf-search-dislike"))
    http = http_search(apis, photo, personalize="conf-search", k=20)
    assert http.status_code == 200, http.get_json()
    request = pb.SearchRequest(image=photo, k=20, personalize="conf-search")
    assert http_answer(http.get_json()) == grpc_answer(apis["grpc"].Search(request))
    unpersonal = http_search(apis, photo, k=20).get_json()
    assert http_answer(http.get_json()) != http_answer(unpersonal)
    http = apis["http"].get(f"/api/v1/items/{item.id}/similar", query_string={"personalize": "conf-search", "k": 20})
    response = apis["grpc"].SimilarItems(pb.SimilarItemsRequest(item_id=item.id, k=20, personalize="conf-search"))
    assert [i["id"] for i in http.get_json()["items"]] == [i.id for i in response.items]
    assert disliked not in [i.id for i in response.items]


def test_bad_personalize_is_named_by_both(apis, photo):
    http = http_search(apis, photo, personalize="x" * 200, k=0)
    assert http.status_code == 400
    assert [p["name"] for p in http.get_json()["invalid_params"]] == ["k", "personalize"]
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].Search(pb.SearchRequest(image=photo, k=-1, personalize="x" * 200))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "personalize:" in err.value.details()
