"""The gRPC API through clients that are not ours: grpcio's health stub and the reflection client.

A real gRPC server on a free port (``build_grpc_server``), a real on-disk
EmbeddedIndex of catalog photos and the real Analyzer; the model client is
the ``FakeModels`` seam, switched off to stand for a model that is not ready
(or a model server that went away), and the index can be switched off too.
The Recommender call is made without ``eyepic.v1``'s generated stubs: its
messages are built from the descriptors the server reflects. Where a
``grpcurl`` binary is found (``EYEPIC_GRPCURL`` or PATH; build it with
``go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3``), it
lists, checks and calls the server too; without one that test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from devtools.harness import free_port
from eyepic.settings import Settings
from eyepic.v1 import recommender_pb2 as pb
from grpcapi.server import build_grpc_server
from indexer.base import IndexUnavailable
from indexer.embedded import EmbeddedIndex
from serving.analyzer import Analyzer

from fakes import FakeModels, make_items

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INTERVAL_S = 0.05


class SwitchableIndex:
    """The real index, or IndexUnavailable for every call while ``down``."""

    def __init__(self, index: EmbeddedIndex):
        self.index = index
        self.down = False

    def __getattr__(self, name: str) -> Any:  # search, count, get, facets...
        if self.down:
            raise IndexUnavailable("index down (test)")
        return getattr(self.index, name)


@pytest.fixture
def stack(tmp_path: Path, catalog_photos: dict[str, list[Path]]) -> Iterator[dict[str, Any]]:
    settings = Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "models", default_k=5, max_k=20)
    items = make_items(catalog_photos)
    embedded = EmbeddedIndex(settings.index_dir / "test.sqlite")
    embedded.upsert(items)
    index = SwitchableIndex(embedded)
    models = FakeModels(available=False)  # the model is not ready yet
    server, port = build_grpc_server(settings, Analyzer(models), index, address=f"127.0.0.1:{free_port()}",
                                     health_interval_s=INTERVAL_S)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield {"server": server, "channel": channel, "target": f"127.0.0.1:{port}", "models": models,
               "index": index, "items": items}
    finally:
        channel.close()
        server.stop(grace=None).wait()
        embedded.close()


def status(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def wait_for(channel: grpc.Channel, expected: int, timeout: float = 10.0) -> None:
    """Until both the server ("") and eyepic.v1.Recommender report ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        now = {service: status(channel, service) for service in ("", "eyepic.v1.Recommender")}
        if set(now.values()) == {expected}:
            return
        assert time.monotonic() < deadline, now
        time.sleep(INTERVAL_S)


def test_health_follows_the_model_and_the_index(stack):
    channel = stack["channel"]
    for _ in range(5):  # several watcher rounds: the model is not ready, so never SERVING
        assert status(channel, "") == NOT_SERVING
        assert status(channel, "eyepic.v1.Recommender") == NOT_SERVING
        assert status(channel, "liveness") == SERVING  # the process answers: no restart
        time.sleep(INTERVAL_S)

    stack["models"].available = True  # the model is loaded / the model server answers
    wait_for(channel, SERVING)

    stack["models"].available = False  # the model server goes away
    wait_for(channel, NOT_SERVING)
    stack["models"].available = True
    wait_for(channel, SERVING)

    stack["index"].down = True  # the index goes away
    wait_for(channel, NOT_SERVING)
    assert status(channel, "liveness") == SERVING
    stack["index"].down = False
    wait_for(channel, SERVING)

    with pytest.raises(grpc.RpcError) as err:
        status(channel, "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_streams_the_change_and_stop_says_not_serving(stack):
    stub = health_pb2_grpc.HealthStub(stack["channel"])
    stream = stub.Watch(health_pb2.HealthCheckRequest(service="eyepic.v1.Recommender"), timeout=10)
    assert next(stream).status == NOT_SERVING
    stack["models"].available = True
    assert next(stream).status == SERVING
    time.sleep(10 * INTERVAL_S)  # watcher rounds without a change send nothing

    watcher = stack["server"].watcher
    stopped = stack["server"].stop(grace=1.0)
    assert next(stream).status == NOT_SERVING  # the next message is the shutdown, not a repeat
    stopped.wait()  # the fixture's second stop is harmless
    assert watcher._thread is not None and not watcher._thread.is_alive()
    assert watcher.servicer._server_status[""] == NOT_SERVING
    assert watcher.servicer._server_status["liveness"] == NOT_SERVING
    stream.cancel()


def test_reflection_lists_and_calls_the_recommender_without_our_stubs(stack):
    channel = stack["channel"]
    stack["models"].available = True
    wait_for(channel, SERVING)

    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {"eyepic.v1.Recommender", "grpc.health.v1.Health"} <= services

    pool = descriptor_pool.DescriptorPool(database)  # fetched from the server, not our eyepic.v1 module
    recommender = pool.FindServiceByName("eyepic.v1.Recommender")
    methods = {m.name: m for m in recommender.methods}
    assert {"Search", "SimilarItems"} <= set(methods)
    assert methods["Search"].input_type.full_name == "eyepic.v1.SearchRequest"

    method = methods["SimilarItems"]
    request_class = GetMessageClass(method.input_type)
    response_class = GetMessageClass(method.output_type)
    assert request_class is not pb.SimilarItemsRequest and response_class is not pb.SimilarItemsResponse

    item = stack["items"][0]
    request = request_class(item_id=item.id, k=3)
    call = channel.unary_unary(f"/{recommender.full_name}/{method.name}",
                               request_serializer=request_class.SerializeToString,
                               response_deserializer=response_class.FromString)
    answer = call(request, timeout=10)
    assert answer.item.id == item.id
    assert 0 < len(answer.items) <= 3
    assert all(found.group == item.group and found.id != item.id for found in answer.items)
    assert list(answer.filters.group) == [item.group]

    with pytest.raises(grpc.RpcError) as err:
        call(request_class(item_id="no/such/item"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


GRPCURL = os.environ.get("EYEPIC_GRPCURL") or shutil.which("grpcurl")


@pytest.mark.skipif(not GRPCURL, reason="no grpcurl (EYEPIC_GRPCURL or PATH)")
def test_grpcurl_lists_checks_and_calls(stack):
    def grpcurl(*args: str, data: dict[str, Any] | None = None) -> str:
        extra = ["-d", json.dumps(data)] if data is not None else []
        done = subprocess.run([GRPCURL, "-plaintext", "-max-time", "10", *extra, stack["target"], *args],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    health = {"service": "eyepic.v1.Recommender"}
    assert json.loads(grpcurl("grpc.health.v1.Health/Check", data=health))["status"] == "NOT_SERVING"
    stack["models"].available = True
    wait_for(stack["channel"], SERVING)
    assert json.loads(grpcurl("grpc.health.v1.Health/Check", data=health))["status"] == "SERVING"

    assert {"eyepic.v1.Recommender", "grpc.health.v1.Health"} <= set(grpcurl("list").split())
    assert {"eyepic.v1.Recommender.Search", "eyepic.v1.Recommender.SimilarItems"} <= set(
        grpcurl("list", "eyepic.v1.Recommender").split())
    item = stack["items"][0]
    answer = json.loads(grpcurl("eyepic.v1.Recommender/SimilarItems", data={"item_id": item.id, "k": 3}))
    assert answer["item"]["id"] == item.id and 0 < len(answer["items"]) <= 3
