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
                                     address=f"127.0.0.1:{free_port()}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    web = app.test_client()
    try:
        assert web.get("/readyz").status_code == 200
        before = _search(web, photo)
        assert before.status_code == 200, before.get_json()
        assert stub.Search(pb.SearchRequest(image=photo, k=3)).garments

        devserver.stop()
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
        assert stub.Search(pb.SearchRequest(image=photo, k=3)).garments
    finally:
        channel.close()
        server.stop(grace=None)
        devserver.stop()
        index.close()
