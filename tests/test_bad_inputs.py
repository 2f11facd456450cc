"""The bad-input matrix: each case through HTTP and gRPC, each refused with the right 4xx
(or gRPC code) and a problem that names the field, never a 5xx or a traceback.

One app and one gRPC server over the same Analyzer (``FakeModels``: the
models don't matter here, decoding is real) and a real EmbeddedIndex, as in
test_api_conformance.py. Where a case cannot be expressed in protobuf (a
string ``k``), the gRPC half says why instead of pretending.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from uploads import HEIC, HTML, NOT_AN_IMAGE, SVG, LazyBody, damaged_exif, png_bomb, truncated

from devtools.harness import free_port
from eyepic.imaging import SUPPORTED_TYPES
from eyepic.settings import Settings
from eyepic.v1 import recommender_pb2 as pb
from eyepic.v1 import recommender_pb2_grpc
from grpcapi.server import build_grpc_server
from indexer.embedded import EmbeddedIndex
from serving.analyzer import Analyzer
from web import create_app

from fakes import FakeModels, make_items

PROBLEM = "application/problem+json"
HUNDRED_MB = 100 * 2**20
SEARCH = "/eyepic.v1.Recommender/Search"
TRAVERSAL = "../../../../etc/passwd"


@pytest.fixture(scope="module")
def apis(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=5, max_k=20)
    index = EmbeddedIndex(settings.index_dir / "test.sqlite")
    items = make_items(catalog_photos)
    index.upsert(items)
    analyzer = Analyzer(FakeModels())
    app = create_app(settings, analyzer=analyzer, index=index)
    server, port = build_grpc_server(settings, analyzer, app.extensions["eyepic"].index,
                                     address=f"127.0.0.1:{free_port()}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield {"http": app.test_client(), "stub": recommender_pb2_grpc.RecommenderStub(channel),
               "raw": channel.unary_unary(SEARCH), "item": items[0].id, "settings": settings}
    finally:
        channel.close()
        server.stop(grace=None)
        index.close()


def form(image: bytes | None = None, field: str = "image", **fields: str) -> Callable[[Any], Any]:
    def send(apis: dict[str, Any]) -> Any:
        data: dict[str, Any] = dict(fields)
        if image is not None:
            data[field] = (io.BytesIO(image), "upload.jpg")
        return apis["http"].post("/api/v1/search", data=data, content_type="multipart/form-data")
    return send


def search(image: bytes = b"", **fields: Any) -> Callable[[Any], Any]:
    def send(apis: dict[str, Any]) -> Any:
        request = pb.SearchRequest(image=image, k=fields.get("k", 0),
                                   filters=pb.Filters(**fields.get("filters", {})))
        if "box" in fields:
            request.box.CopyFrom(pb.Box(**dict(zip(("x0", "y0", "x1", "y1"), fields["box"], strict=True))))
        return apis["stub"].Search(request)
    return send


def raw(body: bytes) -> Callable[[Any], Any]:
    return lambda apis: apis["raw"](body)


def field(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field (``number`` < 2048, ``value`` < 2 MiB)."""
    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out
    return varint(number << 3 | 2) + varint(len(value)) + value


def huge_http(apis: dict[str, Any]) -> Any:
    """100 MB announced and made lazily: refused from Content-Length before the body is read."""
    body = LazyBody(HUNDRED_MB)
    resp = apis["http"].post("/api/v1/search", input_stream=body,
                             content_type="multipart/form-data; boundary=x")
    assert body.read_bytes < 2**20, f"read {body.read_bytes} bytes of a refused upload"
    return resp


def huge_grpc(apis: dict[str, Any]) -> Any:
    header = b"\x0a" + bytes([0x80, 0x80, 0x80, 0x32])  # field 1 (image), 100 MiB long
    return apis["raw"](header + bytes(HUNDRED_MB))


def http_get(path: str, **query: str) -> Callable[[Any], Any]:
    return lambda apis: apis["http"].get(path.replace("{item}", apis["item"]), query_string=query)


def similar(item_id: str | None = None, **fields: Any) -> Callable[[Any], Any]:
    return lambda apis: apis["stub"].SimilarItems(pb.SimilarItemsRequest(
        item_id=apis["item"] if item_id is None else item_id, k=fields.get("k", 0),
        filters=pb.Filters(**fields.get("filters", {}))))


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    http: Callable[[Any], Any]
    status: int
    names: tuple[str, ...]  # the fields the HTTP problem must name
    grpc: Callable[[Any], Any] | None
    code: grpc.StatusCode | None
    grpc_names: tuple[str, ...] = ()  # what the gRPC details must name ("" when the code says it all)
    why_no_grpc: str = ""


INVALID, NOT_FOUND, EXHAUSTED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)
# a photo is only needed where other fields are the point; b"\xff\xd8\xff" starts a JPEG that never comes
JPEG_START = b"\xff\xd8\xff\xe0" + b"\0" * 64

CASES = [
    Case("empty body", lambda apis: apis["http"].post("/api/v1/search"), 400, ("image",),
         search(), INVALID, ("image",)),
    Case("wrong field name", form(b"\xff\xd8\xff", field="photo"), 400, ("image",),
         raw(field(99, JPEG_START)), INVALID, ("image",)),
    Case("non-image bytes", form(NOT_AN_IMAGE), 415, ("image",), search(NOT_AN_IMAGE), INVALID, ("image",)),
    Case("truncated JPEG", "truncated", 422, ("image",), "truncated", INVALID, ("image",)),
    Case("decompression bomb PNG 50000x50000", form(png_bomb()), 422, ("image",),
         search(png_bomb()), INVALID, ("image",)),
    Case("PNG with a damaged EXIF block", form(damaged_exif("PNG")), 422, ("image",),
         search(damaged_exif("PNG")), INVALID, ("image",)),
    Case("WebP with a damaged EXIF block", form(damaged_exif("WEBP")), 422, ("image",),
         search(damaged_exif("WEBP")), INVALID, ("image",)),
    Case("HEIC", form(HEIC), 415, ("image",), search(HEIC), INVALID, ("image",)),
    Case("SVG posing as an image", form(SVG), 415, ("image",), search(SVG), INVALID, ("image",)),
    Case("HTML posing as an image", form(HTML), 415, ("image",), search(HTML), INVALID, ("image",)),
    Case("100 MB upload", huge_http, 413, ("image",), huge_grpc, EXHAUSTED),
    Case("zero-area box", form(JPEG_START, box="0.2,0.3,0.2,0.9"), 400, ("box",),
         search(JPEG_START, box=(0.2, 0.3, 0.2, 0.9)), INVALID, ("box",)),
    Case("inverted box", form(JPEG_START, box="0.8,0.9,0.1,0.2"), 400, ("box",),
         search(JPEG_START, box=(0.8, 0.9, 0.1, 0.2)), INVALID, ("box",)),
    Case("malformed JSON / message", lambda apis: apis["http"].post(
        "/api/v1/search", data=b'{"image": "abc",', content_type="application/json"), 415, ("Content-Type",),
         raw(b"\xff\xff\xff"), INVALID, ("request",)),
    Case("unknown filters", form(JPEG_START, color="plaid", group="socks"), 400, ("group", "color"),
         search(JPEG_START, filters={"color": ["plaid"], "group": ["socks"]}), INVALID,
         ("filters.group", "filters.color")),
    Case("k = 0", form(JPEG_START, k="0"), 400, ("k",), None, None,
         why_no_grpc="proto3 cannot tell k = 0 from an absent k: 0 means the server's default over gRPC"),
    Case("k = 10^6", form(JPEG_START, k="1000000"), 400, ("k",), search(JPEG_START, k=10**6), INVALID, ("k",)),
    Case("k = -1", form(JPEG_START, k="-1"), 400, ("k",), search(JPEG_START, k=-1), INVALID, ("k",)),
    Case('k = "abc"', form(JPEG_START, k="abc"), 400, ("k",), None, None,
         why_no_grpc="k is an int32 field: protobuf cannot carry a string in it"),
    Case("unknown item id", http_get("/api/v1/items/no-such-item/similar"), 404, ("item_id",),
         similar("no-such-item"), NOT_FOUND),
    Case("unknown item id (item)", http_get("/api/v1/items/no-such-item"), 404, ("item_id",),
         similar("no-such-item"), NOT_FOUND),
    Case("path traversal in an id (image)", http_get(f"/api/v1/items/{TRAVERSAL}/image"), 404, ("item_id",),
         similar(TRAVERSAL), NOT_FOUND),
    Case("encoded path traversal in an id", http_get("/api/v1/items/..%2F..%2F..%2Fetc%2Fpasswd/image"), 404,
         ("item_id",), similar("..%2F..%2Fetc%2Fpasswd"), NOT_FOUND),
    Case("similar with bad k and filter", http_get("/api/v1/items/{item}/similar", k="abc", color="plaid"), 400,
         ("k", "color"), similar(k=-5, filters={"color": ["plaid"]}), INVALID, ("k", "filters.color")),
]


def _resolve(case_part: Any, photo: bytes, http: bool) -> Callable[[Any], Any]:
    if case_part == "truncated":
        return form(truncated(photo)) if http else search(truncated(photo))
    return case_part


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_http_refuses_with_a_problem_naming_the_field(apis, photo, case: Case) -> None:
    resp = _resolve(case.http, photo, http=True)(apis)
    text = resp.get_data(as_text=True)
    assert resp.status_code == case.status, text
    assert resp.mimetype == PROBLEM and "Traceback" not in text
    body = resp.get_json()
    assert body["status"] == case.status and body["title"] and body["detail"]
    assert set(case.names) <= {p["name"] for p in body["invalid_params"]}, body
    assert "root:" not in text  # nothing of /etc/passwd, whatever the id
    if case.status == 415 and "image" in case.names:
        assert body["supported"] == list(SUPPORTED_TYPES.values())


GRPC_CASES = [c for c in CASES if c.grpc is not None]


def test_each_case_has_a_grpc_half_or_says_why_not() -> None:
    assert all(c.why_no_grpc for c in CASES if c.grpc is None)
    assert len(GRPC_CASES) >= len(CASES) - 2


@pytest.mark.parametrize("case", GRPC_CASES, ids=[c.name for c in GRPC_CASES])
def test_grpc_refuses_with_the_right_code_naming_the_field(apis, photo, case: Case) -> None:
    assert case.grpc is not None
    with pytest.raises(grpc.RpcError) as err:
        _resolve(case.grpc, photo, http=False)(apis)
    assert err.value.code() == case.code, err.value.details()
    details = err.value.details() or ""
    assert "Traceback" not in details
    for name in case.grpc_names:
        assert f"{name}: " in details, details


def test_grpc_lists_the_supported_types_for_an_unsupported_one(apis) -> None:
    with pytest.raises(grpc.RpcError) as err:
        search(HEIC)(apis)
    assert all(kind in err.value.details() for kind in SUPPORTED_TYPES.values())


def test_grpc_k_zero_means_the_default(apis, photo) -> None:
    """The documented gRPC meaning of k = 0 (the HTTP API refuses it): the server's default."""
    response = search(photo)(apis)
    assert len(response.garments[0].items) == apis["settings"].default_k


def test_a_client_filename_is_never_a_path(apis, photo, tmp_path, monkeypatch) -> None:
    """An upload named like a path is searched and nothing lands on disk under its name."""
    monkeypatch.chdir(tmp_path)
    resp = apis["http"].post("/api/v1/search", data={"image": (io.BytesIO(photo), "../../evil.jpg")},
                             content_type="multipart/form-data")
    assert resp.status_code == 200
    assert not list(tmp_path.parent.glob("evil.jpg")) and not list(tmp_path.rglob("evil.jpg"))
    assert not list(apis["settings"].var_dir.rglob("*evil*"))


def test_an_oversized_body_of_any_type_is_413(apis) -> None:
    body = LazyBody(HUNDRED_MB)
    resp = apis["http"].post("/api/v1/search", input_stream=body, content_type="application/json")
    assert resp.status_code == 413 and body.read_bytes == 0
