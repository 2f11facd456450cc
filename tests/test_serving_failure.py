"""Model server down, then back: 503s and UNAVAILABLE, then recovery without a restart.

The web app and the gRPC API run in this process on the real gRPC model
client; the dev server is a real child process that the test stops and
starts again on the same 127.0.0.1 port.
"""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.harness import DevServerProcess, free_port, write_config
from eyepic.v1 import recommender_pb2 as pb
from eyepic.v1 import recommender_pb2_grpc
from grpcapi.server import build_grpc_server
from indexer.factory import open_index
from serving.analyzer import Analyzer
from serving.tfserving_client import GrpcModelClient
from web.metrics import install_metrics

pytestmark = pytest.mark.slow  # starts the dev server twice (~30 s)

RECOVERY_S = 30.0  # reconnect backoff is capped at 2 s; generous for a loaded CI machine


def _wait_health(channel: grpc.Channel, expected: int, timeout: float = RECOVERY_S) -> None:
    """Until the standard health service says ``expected`` for eyepic.v1.Recommender."""
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="eyepic.v1.Recommender")
    deadline = time.monotonic() + timeout
    while (now := stub.Check(request, timeout=5).status) != expected:
        assert time.monotonic() < deadline, health_pb2.HealthCheckResponse.ServingStatus.Name(now)
        time.sleep(0.2)


def _search(client, photo: bytes):
    return client.post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.jpg"), "k": "3"})


def test_model_server_down_then_back(catalog_index_settings, tiny_model_dir: Path, data_dir: Path, tmp_path: Path):
    from web import create_app

    photo = sorted((data_dir / "clothing-small" / "validation" / "shirt").glob("*.jpg"))[0].read_bytes()
    config = write_config(tmp_path / "models.config", {"classifier": tiny_model_dir / "classifier"},
                          labels={"stable": 1, "canary": 1})
    devserver = DevServerProcess(config, free_port(), log_path=tmp_path / "devserver.log").start()
    settings = dataclasses.replace(catalog_index_settings, model_server=devserver.target, model_timeout_s=5.0)
    analyzer = Analyzer.from_settings(settings)
    assert isinstance(analyzer.models, GrpcModelClient)
    index = open_index(settings)
    app = create_app(settings, analyzer=analyzer, index=index)
    install_metrics(app)
    server, port = build_grpc_server(settings, analyzer, app.extensions["eyepic"].index,
                                     address=f"127.0.0.1:{free_port()}", health_interval_s=0.2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    web = app.test_client()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        assert web.get("/readyz").status_code == 200
        _wait_health(channel, serving)
        before = _search(web, photo)
        assert before.status_code == 200, before.get_json()
        assert stub.Search(pb.SearchRequest(image=photo, k=3)).garments

        devserver.stop()
        _wait_health(channel, not_serving)  # the gRPC API's readiness follows the model server too
        ready = web.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        started = time.perf_counter()
        down = _search(web, photo)
        took = time.perf_counter() - started
        assert down.status_code == 503
        assert down.mimetype == "application/problem+json"
        assert down.headers["Retry-After"]
        assert down.get_json()["type"].endswith("model-unavailable")
        assert took < settings.model_timeout_s * 2 + 1  # retries stay inside the deadline
        with pytest.raises(grpc.RpcError) as err:
            stub.Search(pb.SearchRequest(image=photo, k=3))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "model server" in err.value.details()
        # bad input is still a client error, not an outage
        with pytest.raises(grpc.RpcError) as err:
            stub.Search(pb.SearchRequest(image=b"not an image"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        body = web.get("/metrics").get_data(as_text=True)
        assert 'kind="model-unavailable"' in body

        devserver.start()
        deadline = time.monotonic() + RECOVERY_S
        while True:
            after = _search(web, photo)
            if after.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert after.status_code == 200, after.get_json()
        assert [i["id"] for i in after.get_json()["garments"][0]["items"]] == [
            i["id"] for i in before.get_json()["garments"][0]["items"]]
        assert web.get("/readyz").status_code == 200
        _wait_health(channel, serving)
        assert stub.Search(pb.SearchRequest(image=photo, k=3)).garments
    finally:
        channel.close()
        server.stop(grace=None)
        devserver.stop()
        index.close()
