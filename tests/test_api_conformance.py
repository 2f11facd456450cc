"""The same requests through HTTP and gRPC get the same answers and the same refusals.

Both APIs are adapters over one ``services.search.SearchService`` (and one
``services.outfits.OutfitService`` for complete-the-look); this
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
from web import create_app

from fakes import BrokenEventStore, FakeModels, make_items
from outfit_fakes import tiny_compatibility

FILTERS = ("group", "type", "color", "shop")
API_KEY = "conformance-key-0123456789"


@pytest.fixture(scope="module")
def apis(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("conformance")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=5, max_k=20, api_keys=API_KEY)
    index = EmbeddedIndex(settings.index_dir / "test.sqlite")
    items = make_items(catalog_photos)
    for i, item in enumerate(items):  # two shops, so the shop filter has something to choose
        item.shop = "Shop A" if i % 2 else "shop-b"
    index.upsert(items)
    models = FakeModels(groups=("top", "bottom"), detections=[(0.2, 0.05, 0.8, 0.5), (0.25, 0.5, 0.75, 0.98)])
    analyzer = Analyzer(models)
    looks = tiny_compatibility()
    app = create_app(settings, analyzer=analyzer, index=index, compatibility=looks)
    shared = app.extensions["eyepic"]  # one events store and one set of rate limits for both APIs
    server, port = build_grpc_server(settings, analyzer, shared.index, app.extensions["eyepic_metrics"],
                                     address=f"127.0.0.1:{free_port()}", events=shared.events, access=shared.access,
                                     compatibility=looks)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield {"http": app.test_client(), "grpc": recommender_pb2_grpc.RecommenderStub(channel), "items": items}
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


# -- complete the look ------------------------------------------------------------------------
def http_look_groups(groups: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, float, str]]]]:
    return [(g["group"], [(i["id"], round(i["score"], 4), i["reason"]) for i in g["items"]]) for g in groups]


def grpc_look_groups(groups: Any) -> list[tuple[str, list[tuple[str, float, str]]]]:
    return [(g.group, [(i.item.id, round(i.item.score, 4), i.reason) for i in g.items]) for g in groups]


@pytest.mark.parametrize("type_name, fields", [
    ("t-shirt", {}), ("jeans", {"k": 2}), ("dress", {"k": 4, "user": "shopper-7"}), ("shoes", {"k": 1}),
    ("hat", {}),
])
def test_complete_the_look_of_an_item_matches(apis, type_name, fields):
    item = next((i for i in apis["items"] if i.type == type_name), None) or \
        next(i for i in apis["items"] if i.type == "pants")
    http = apis["http"].get(f"/api/v1/items/{item.id}/complete-the-look", query_string=fields)
    assert http.status_code == 200, http.get_json()
    body = http.get_json()
    response = apis["grpc"].CompleteTheLook(pb.CompleteTheLookRequest(item_id=item.id, k=int(fields.get("k", 0)),
                                                                      user=fields.get("user", "")))
    assert http_look_groups(body["groups"]) == grpc_look_groups(response.groups)
    assert body["item"]["id"] == response.item.id == item.id
    assert body["personalised"] is response.personalised is False
    if item.type != "hat":
        assert body["groups"] and all(g["items"] for g in body["groups"])


@pytest.mark.parametrize("fields", [{}, {"k": 2}, {"garment": 1}, {"box": (0.125, 0.25, 0.625, 0.875), "k": 3}])
def test_complete_the_look_of_a_photo_matches(apis, photo, fields):
    data: dict[str, Any] = {"image": (io.BytesIO(photo), "photo.jpg")}
    data.update({n: ",".join(map(str, v)) if n == "box" else str(v) for n, v in fields.items()})
    http = apis["http"].post("/api/v1/complete-the-look", data=data, content_type="multipart/form-data")
    assert http.status_code == 200, http.get_json()
    body = http.get_json()
    request = pb.CompleteTheLookRequest(image=photo, k=int(fields.get("k", 0)))
    if "garment" in fields:
        request.garment = fields["garment"]
    if "box" in fields:
        x0, y0, x1, y1 = fields["box"]
        request.box.CopyFrom(pb.Box(x0=x0, y0=y0, x1=x1, y1=y1))
    response = apis["grpc"].CompleteTheLook(request)
    assert [(g["index"], g["group"], g["type"], g["color"], [round(v, 5) for v in g["box"]],
             http_look_groups(g["groups"])) for g in body["garments"]] == \
        [(g.index, g.group, g.type, g.color, [round(v, 5) for v in (g.box.x0, g.box.y0, g.box.x1, g.box.y1)],
          grpc_look_groups(g.groups)) for g in response.garments]
    assert (body["image"]["width"], body["detector_used"], body["model_version"]) == \
        (response.width, response.detector_used, response.model_version)


@pytest.mark.parametrize("request_fields, names", [
    ({}, ["image"]),
    ({"item_id": "ITEM", "k": 99}, ["k"]),
    ({"item_id": "ITEM", "user": "not a user id"}, ["user"]),
    ({"image": "PHOTO", "garment": 5}, ["garment"]),
    ({"image": "PHOTO", "garment": 0, "box": (0.1, 0.1, 0.5, 0.5)}, ["garment"]),
])
def test_complete_the_look_refusals_match(apis, photo, request_fields, names):
    item_id = apis["items"][0].id
    fields = {n: item_id if v == "ITEM" else photo if v == "PHOTO" else v for n, v in request_fields.items()}
    if "item_id" in fields:
        http = apis["http"].get(f"/api/v1/items/{fields['item_id']}/complete-the-look",
                                query_string={n: v for n, v in fields.items() if n != "item_id"})
    else:
        data: dict[str, Any] = {n: ",".join(map(str, v)) if n == "box" else str(v)
                                for n, v in fields.items() if n != "image"}
        if "image" in fields:
            data["image"] = (io.BytesIO(fields["image"]), "photo.jpg")
        http = apis["http"].post("/api/v1/complete-the-look", data=data, content_type="multipart/form-data")
    assert http.status_code == 400, http.get_json()
    assert [p["name"] for p in http.get_json()["invalid_params"]] == names
    request = pb.CompleteTheLookRequest(item_id=fields.get("item_id", ""), image=fields.get("image", b""),
                                        k=int(fields.get("k", 0)), user=fields.get("user", ""))
    if "garment" in fields:
        request.garment = fields["garment"]
    if "box" in fields:
        x0, y0, x1, y1 = fields["box"]
        request.box.CopyFrom(pb.Box(x0=x0, y0=y0, x1=x1, y1=y1))
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].CompleteTheLook(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == grpc_details(http.get_json()["invalid_params"])


# -- events: RecordEvent / ForgetUser against POST /users/<uid>/events / DELETE /users/<uid> -------
def http_record(apis: dict[str, Any], user: str, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    return apis["http"].post(f"/api/v1/users/{user}/events", json=fields, headers=headers or {})


def grpc_record(apis: dict[str, Any], user: str, metadata: tuple = (), **fields: Any) -> Any:
    return apis["grpc"].RecordEvent(pb.RecordEventRequest(user_id=user, **fields), metadata=metadata)


KEY_HEADER = {"X-API-Key": API_KEY}
KEY_METADATA = (("x-api-key", API_KEY),)


def test_an_event_recorded_by_one_api_is_a_retry_for_the_other(apis):
    item = apis["items"][0].id
    http = http_record(apis, "both-1", KEY_HEADER, kind="like", item_id=item, event_id="e1", at=1_750_000_000)
    assert http.status_code == 201
    response = grpc_record(apis, "both-1", KEY_METADATA, kind="like", item_id=item, event_id="e1", at=1_750_000_000)
    assert response.created is False
    event = http.get_json()["event"]
    assert (event["user_id"], event["kind"], event["item_id"], event["at"], event["event_id"]) == (
        response.event.user_id, response.event.kind, response.event.item_id, response.event.at,
        response.event.event_id)
    response = grpc_record(apis, "both-1", (("authorization", f"Bearer {API_KEY}"),), kind="dislike",
                           item_id=apis["items"][1].id)
    assert response.created is True and len(response.event.event_id) == 32  # the server made the id
    history = apis["http"].get("/api/v1/users/both-1/events").get_json()["events"]
    assert [(e["kind"], e["item_id"]) for e in history] == [("like", item), ("dislike", apis["items"][1].id)]


def test_forget_user_matches(apis):
    item = apis["items"][0].id
    for user in ("forget-http", "forget-grpc"):
        for i in range(2):
            grpc_record(apis, user, KEY_METADATA, kind="view", item_id=item, event_id=f"v{i}")
    http = apis["http"].delete("/api/v1/users/forget-http", headers=KEY_HEADER).get_json()
    response = apis["grpc"].ForgetUser(pb.ForgetUserRequest(user_id="forget-grpc"), metadata=KEY_METADATA)
    assert http == {"user_id": "forget-http", "forgotten": 2}
    assert (response.user_id, response.forgotten) == ("forget-grpc", 2)


def test_a_session_token_from_the_web_api_works_over_grpc_for_its_own_user_only(apis):
    me = apis["http"].post("/api/v1/session").get_json()
    mine = (("authorization", f"Bearer {me['token']}"),)
    assert grpc_record(apis, me["user_id"], mine, kind="like", item_id=apis["items"][0].id).created
    for call in (lambda: grpc_record(apis, "someone-else", mine, kind="like", item_id=apis["items"][0].id),
                 lambda: apis["grpc"].ForgetUser(pb.ForgetUserRequest(user_id="someone-else"), metadata=mine)):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert apis["grpc"].ForgetUser(pb.ForgetUserRequest(user_id=me["user_id"]), metadata=mine).forgotten == 1


@pytest.mark.parametrize("metadata, headers, status, code", [
    ((), {}, 401, grpc.StatusCode.UNAUTHENTICATED),
    ((("x-api-key", API_KEY + "x"),), {"X-API-Key": API_KEY + "x"}, 403, grpc.StatusCode.PERMISSION_DENIED),
    ((("authorization", "Bearer nope"),), {"Authorization": "Bearer nope"}, 403, grpc.StatusCode.PERMISSION_DENIED),
])
def test_access_refusals_match(apis, metadata, headers, status, code):
    item = apis["items"][0].id
    http = http_record(apis, "refused", headers, kind="like", item_id=item)
    with pytest.raises(grpc.RpcError) as err:
        grpc_record(apis, "refused", metadata, kind="like", item_id=item)
    assert http.status_code == status and err.value.code() == code
    assert err.value.details() == http.get_json()["detail"]
    assert apis["http"].delete("/api/v1/users/refused", headers=headers).status_code == status
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].ForgetUser(pb.ForgetUserRequest(user_id="refused"), metadata=metadata)
    assert err.value.code() == code


@pytest.mark.parametrize("user, fields", [
    ("ok-user", {}),
    ("ok-user", {"kind": "love", "item_id": "x", "event_id": "a b"}),
    ("ok-user", {"kind": "like", "item_id": "x", "at": 4_000_000_000.0}),
    ("ok-user", {"kind": "like", "item_id": "x", "at": 12.5}),
    ("bad user", {"kind": "like", "item_id": "x"}),
])
def test_event_refusals_match(apis, user, fields):
    http = http_record(apis, user, KEY_HEADER, **fields)
    assert http.status_code == 400
    with pytest.raises(grpc.RpcError) as err:
        grpc_record(apis, user, KEY_METADATA, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == grpc_details(http.get_json()["invalid_params"])


def test_complete_the_look_of_an_unknown_item_is_not_found_on_both(apis):
    http = apis["http"].get("/api/v1/items/no-such-item/complete-the-look")
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].CompleteTheLook(pb.CompleteTheLookRequest(item_id="no-such-item"))
    assert http.status_code == 404 and err.value.code() == grpc.StatusCode.NOT_FOUND
    assert http.get_json()["detail"] == err.value.details()


def test_an_unknown_item_is_not_found_on_both(apis):
    http = http_record(apis, "ok-user", KEY_HEADER, kind="like", item_id="no/such/item")
    with pytest.raises(grpc.RpcError) as err:
        grpc_record(apis, "ok-user", KEY_METADATA, kind="like", item_id="no/such/item")
    assert http.status_code == 404 and err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == http.get_json()["detail"]
    with pytest.raises(grpc.RpcError) as err:
        apis["grpc"].ForgetUser(pb.ForgetUserRequest(user_id="../etc"), metadata=KEY_METADATA)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("user_id:")


def test_grpc_rate_limits_are_resource_exhausted_with_retry_after(apis, tmp_path):
    from services.access import AccessControl
    from taste.events import MemoryEventStore

    settings = Settings(var_dir=tmp_path, api_keys=API_KEY, rate_user_per_s=0.01, rate_user_burst=2,
                        rate_ip_per_s=0.01, rate_ip_burst=1)
    index = apis["http"].application.extensions["eyepic"].index
    server, port = build_grpc_server(settings, Analyzer(FakeModels()), index, address=f"127.0.0.1:{free_port()}",
                                     events=MemoryEventStore(), access=AccessControl.from_settings(settings))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    item = apis["items"][0].id
    try:
        for _ in range(2):
            stub.RecordEvent(pb.RecordEventRequest(user_id="busy", kind="view", item_id=item), metadata=KEY_METADATA)
        with pytest.raises(grpc.RpcError) as err:
            stub.RecordEvent(pb.RecordEventRequest(user_id="busy", kind="view", item_id=item), metadata=KEY_METADATA)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "user" in err.value.details()
        assert int(dict(err.value.trailing_metadata())["retry-after"]) >= 1
        # a wrong credential spends the address's bucket first: guessing is throttled as on HTTP
        wrong = (("x-api-key", "guess-guess-guess-guess"),)
        codes = []
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as err:
                stub.ForgetUser(pb.ForgetUserRequest(user_id="busy"), metadata=wrong)
            codes.append(err.value.code())
        assert codes == [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED]
    finally:
        channel.close()
        server.stop(grace=None)


def test_an_events_store_down_is_unavailable_on_grpc_as_503_on_http(apis, tmp_path):
    from taste.events import EventStoreUnavailable

    settings = Settings(var_dir=tmp_path, api_keys=API_KEY)
    index = apis["http"].application.extensions["eyepic"].index
    server, port = build_grpc_server(settings, Analyzer(FakeModels()), index, address=f"127.0.0.1:{free_port()}",
                                     events=BrokenEventStore(EventStoreUnavailable("events store down")))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    try:
        like = pb.RecordEventRequest(user_id="u", kind="like", item_id=apis["items"][0].id)
        for call in (lambda: stub.RecordEvent(like, metadata=KEY_METADATA),
                     lambda: stub.ForgetUser(pb.ForgetUserRequest(user_id="u"), metadata=KEY_METADATA)):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "events store down" in err.value.details()
    finally:
        channel.close()
        server.stop(grace=None)
