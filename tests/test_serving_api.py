"""Eyepic's gRPC API (eyepic.v1.Recommender) over 127.0.0.1, and Prometheus metrics.

Real parts: the tiny exported classifier (in-process), the real embedded
index of 40 catalog photos, a real grpc server on a free port, and the Flask
app built from the *same* Analyzer and Index objects, so both APIs must
agree item for item.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.harness import free_port
from eyepic.schema import Filters
from eyepic.v1 import recommender_pb2 as pb
from eyepic.v1 import recommender_pb2_grpc
from grpcapi.server import build_grpc_server
from indexer.factory import open_index
from serving.analyzer import Analyzer
from web.metrics import install_metrics

pytestmark = pytest.mark.slow  # needs the session's tiny trained model


@pytest.fixture(scope="module")
def stack(catalog_index_settings) -> Iterator[dict[str, Any]]:
    """One Analyzer and Index shared by the Flask app and the gRPC server, as `eyepic serve-grpc` does."""
    from web import create_app

    settings = catalog_index_settings
    analyzer = Analyzer.from_settings(settings)
    index = open_index(settings)
    app = create_app(settings, analyzer=analyzer, index=index)
    metrics = install_metrics(app)
    shared_index = app.extensions["eyepic"].index
    server, port = build_grpc_server(settings, analyzer, shared_index, metrics, address=f"127.0.0.1:{free_port()}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield {"app": app, "client": app.test_client(), "stub": recommender_pb2_grpc.RecommenderStub(channel),
               "settings": settings}
    finally:
        channel.close()
        server.stop(grace=None)
        index.close()


@pytest.fixture(scope="module")
def photo(data_dir: Path) -> bytes:
    return sorted((data_dir / "clothing-small" / "validation" / "dress").glob("*.jpg"))[-1].read_bytes()


def test_search_matches_the_web_api(stack, photo):
    answer = stack["stub"].Search(pb.SearchRequest(image=photo, k=5), timeout=60)
    web = stack["client"].post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.jpg"), "k": "5"}).get_json()
    assert len(answer.garments) == len(web["garments"]) >= 1
    for g, w in zip(answer.garments, web["garments"]):
        assert (g.group, g.type, g.color) == (w["group"], w["type"], w["color"])
        assert [i.id for i in g.items] == [i["id"] for i in w["items"]]
        assert [i.score for i in g.items] == pytest.approx([i["score"] for i in w["items"]], abs=1e-4)
        assert list(g.filters.group) == [g.group]  # own group by default
        assert all(i.image_path == f"/api/v1/items/{i.id}/image" for i in g.items)
    assert answer.model_version == web["model_version"] == "classifier-1"
    assert answer.width > 0 and answer.height > 0


def test_search_filters_box_and_garment(stack, photo):
    answer = stack["stub"].Search(pb.SearchRequest(
        image=photo, k=3, filters=pb.Filters(group=["bottom"]), box=pb.Box(x0=0.1, y0=0.1, x1=0.9, y1=0.9)))
    assert len(answer.garments) == 1
    assert all(item.group == "bottom" for item in answer.garments[0].items)
    assert answer.garments[0].box.x0 == pytest.approx(0.1)
    one = stack["stub"].Search(pb.SearchRequest(image=photo, garment=0))
    assert [g.index for g in one.garments] == [0]
    # default k, or every catalog item of the garment's own group when there are fewer
    in_group = stack["app"].extensions["eyepic"].index.count(Filters(group=(one.garments[0].group,)))
    assert len(one.garments[0].items) == min(stack["settings"].default_k, in_group) > 0


@pytest.mark.parametrize("request_kwargs, fragment", [
    ({"image": b"not an image at all"}, ""),
    ({"image": b""}, "image: missing"),
    ({"filters": pb.Filters(color=["plaid"])}, "filters.color: unknown 'plaid'"),
    ({"k": 1000}, "k: must be from 1 to"),
    ({"box": pb.Box(x0=0.8, y0=0.1, x1=0.2, y1=0.9)}, "box:"),
    ({"garment": 7}, "garment: the photo has 1 garment"),
])
def test_bad_requests_are_invalid_argument(stack, photo, request_kwargs, fragment):
    request = pb.SearchRequest(image=photo)
    request.MergeFrom(pb.SearchRequest(**request_kwargs))
    if "image" in request_kwargs:
        request.image = request_kwargs["image"]
    with pytest.raises(grpc.RpcError) as err:
        stack["stub"].Search(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in err.value.details()


def test_similar_items(stack):
    answer = stack["stub"].SimilarItems(pb.SimilarItemsRequest(item_id="dress-0", k=4))
    assert answer.item.id == "dress-0"
    # k, or every other item of its group when the small test catalog has fewer
    others = stack["app"].extensions["eyepic"].index.count(Filters(group=(answer.item.group,))) - 1
    assert len(answer.items) == min(4, others) > 0 and "dress-0" not in [i.id for i in answer.items]
    assert all(i.group == answer.item.group for i in answer.items)
    web = stack["client"].get("/api/v1/items/dress-0/similar?k=4").get_json()
    assert [i.id for i in answer.items] == [i["id"] for i in web["items"]]
    with pytest.raises(grpc.RpcError) as err:
        stack["stub"].SimilarItems(pb.SimilarItemsRequest(item_id="no-such-item"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_metrics_endpoint_counts_both_apis(stack, photo):
    client = stack["client"]
    client.post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.jpg")})
    client.post("/api/v1/search", data={"image": (io.BytesIO(b"GIF89a broken"), "x.gif")})
    client.get("/api/v1/items/dress-1")
    stack["stub"].Search(pb.SearchRequest(image=photo, k=2))
    with pytest.raises(grpc.RpcError):
        stack["stub"].SimilarItems(pb.SimilarItemsRequest(item_id="no-such-item"))
    body = client.get("/metrics").get_data(as_text=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("eyepic_http_request_duration_seconds_count", method="POST", endpoint="/api/v1/search",
                 status="200") >= 1
    # the URL rule, not each id: few series
    assert value("eyepic_http_request_duration_seconds_count", method="GET",
                 endpoint="/api/v1/items/<path:item_id>", status="200") >= 1
    assert value("eyepic_model_call_duration_seconds_count", model="classifier", outcome="ok") >= 1
    assert value("eyepic_index_query_duration_seconds_count", operation="search", outcome="ok") >= 1
    assert value("eyepic_errors_total", source="http", kind="invalid-image") >= 1
    assert value("eyepic_errors_total", source="grpc", kind="NOT_FOUND") >= 1
    assert value("eyepic_grpc_request_duration_seconds_count", method="Search", code="OK") >= 1
