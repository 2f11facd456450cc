"""Elasticsearch down under search load, then back: 503s and UNAVAILABLE, then recovery.

The web app and the gRPC API run in this process on an Elasticsearch index
held by a second, real node (``fault_es``, port 9250) that the test stops and
starts again; the shared node on 9200 is never touched. Same shape as
``test_serving_failure`` (the model server's outage).
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.harness import free_port
from eyepic.v1 import recommender_pb2 as pb
from eyepic.v1 import recommender_pb2_grpc

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]  # restarts a node (~1 min)

RECOVERY_S = 120.0  # a node restart on a loaded 2-core machine
CLIENTS = 3


def _search(client, photo: bytes):
    return client.post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.jpg"), "k": "3"})


def _ids(response) -> list[str]:
    return [i["id"] for g in response.get_json()["garments"] for i in g["items"]]


def _wait_health(channel: grpc.Channel, expected: int, timeout: float = RECOVERY_S) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="eyepic.v1.Recommender")
    deadline = time.monotonic() + timeout
    while stub.Check(request, timeout=5).status != expected:
        assert time.monotonic() < deadline
        time.sleep(0.2)


class Load:
    """``CLIENTS`` threads searching until stopped; every answer is kept (status, headers, body)."""

    def __init__(self, app, photo: bytes):
        self.app, self.photo = app, photo
        self.answers: list[tuple[float, int, str, str | None, dict]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def _run(self) -> None:
        client = self.app.test_client()
        while not self._stop.is_set():
            r = _search(client, self.photo)
            self.answers.append((time.monotonic(), r.status_code, r.mimetype, r.headers.get("Retry-After"),
                                 r.get_json(silent=True) or {}))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def test_elasticsearch_down_under_load_then_back(fault_es, catalog_index_settings, catalog_manifest, data_dir):
    from app.cli import build_analyzer
    from app.indexing import index_catalog
    from grpcapi.server import build_grpc_server
    from indexer.catalog import read_catalog
    from indexer.factory import open_index
    from web import create_app

    photo = sorted((data_dir / "clothing-small" / "validation" / "shirt").glob("*.jpg"))[0].read_bytes()
    settings = dataclasses.replace(catalog_index_settings, index="elasticsearch", es_url=fault_es.url,
                                   index_name=f"eyepic-outage-{uuid.uuid4().hex[:8]}")
    analyzer = build_analyzer(settings)
    index = open_index(settings)
    with index.writer(analyzer.model_version, 60.0) as target:
        assert index_catalog(read_catalog(catalog_manifest), analyzer, target, progress=False).indexed == 40
    app = create_app(settings, analyzer=analyzer, index=index)
    server, port = build_grpc_server(settings, analyzer, app.extensions["eyepic"].index,
                                     address=f"127.0.0.1:{free_port()}", health_interval_s=0.2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    web = app.test_client()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        assert web.get("/readyz").status_code == 200
        before = _search(web, photo)
        assert before.status_code == 200, before.get_json()
        _wait_health(channel, serving)

        with Load(app, photo) as load:
            time.sleep(1.0)
            stopped_at = time.monotonic()
            fault_es.stop()
            ready = web.get("/readyz")
            assert ready.status_code == 503 and ready.headers["Retry-After"]
            assert ready.get_json()["checks"]["index"] != "ok"
            assert ready.get_json()["checks"]["model"] == "ok"
            started = time.perf_counter()
            down = _search(web, photo)
            took = time.perf_counter() - started
            assert down.status_code == 503, down.get_json()
            assert down.mimetype == "application/problem+json"
            assert down.headers["Retry-After"]
            assert down.get_json()["type"].endswith("index-unavailable")
            assert "Elasticsearch" in down.get_json()["detail"]
            assert took < settings.es_timeout_s, took  # a refused connection fails fast, retries included
            _wait_health(channel, not_serving)
            with pytest.raises(grpc.RpcError) as err:
                stub.Search(pb.SearchRequest(image=photo, k=3))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.RpcError) as err:  # bad input stays a client error during the outage
                stub.Search(pb.SearchRequest(image=b"not an image"))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            fault_es.start()
            deadline = time.monotonic() + RECOVERY_S
            while (after := _search(web, photo)).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            recovered_at = time.monotonic()
            time.sleep(1.0)  # the load sees the recovery too
        assert after.status_code == 200, after.get_json()
        assert _ids(after) == _ids(before)
        assert web.get("/readyz").status_code == 200
        _wait_health(channel, serving)
        assert stub.Search(pb.SearchRequest(image=photo, k=3)).garments

        statuses = {a[1] for a in load.answers}
        assert statuses <= {200, 503}, statuses  # never a 500 under the outage
        outage = [a for a in load.answers if a[1] == 503]
        assert outage, "the load never saw the outage"
        for _, _, mimetype, retry_after, body in outage:
            assert mimetype == "application/problem+json" and retry_after
            assert body["type"].endswith("index-unavailable")
        assert all(a[1] == 200 for a in load.answers if a[0] < stopped_at)
        assert any(a[1] == 200 for a in load.answers if a[0] > recovered_at)
    finally:
        channel.close()
        server.stop(grace=None)
        if fault_es.answers():
            index.drop_all()
        index.close()
