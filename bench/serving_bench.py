"""Warm latency of search in-process vs through the model server, and of the gRPC API.

Same run, same photos, same index, same export:

1. ``POST /api/v1/search`` over real HTTP (loopback), models in-process;
2. the same, with the models behind ``python -m serving.devserver`` (gRPC);
3. ``eyepic.v1.Recommender/Search`` over real gRPC (loopback), models behind
   the dev server, as ``eyepic serve-grpc`` runs in production.

It indexes ``--catalog`` photos of clothing-small into a fresh embedded index
under a temporary folder first (through the in-process analyzer), so it
needs only an export. Prints p50/p95/mean per path and the ratio, and writes
JSON to ``var/reports/bench_serving.json`` (or --out).

    .venv/bin/python -m bench.serving_bench --requests 50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import requests

from bench.common import latency_summary, write_report
from devtools.wsgi import serve_in_thread
from eyepic.settings import Settings


def summary(ms: list[float]) -> dict[str, float]:
    return latency_summary(ms, digits=1)


def timed(call: Callable[[bytes], None], queries: list[bytes], warmup: int) -> list[float]:
    for data in queries[:warmup]:
        call(data)
    out = []
    for data in queries:
        started = time.perf_counter()
        call(data)
        out.append((time.perf_counter() - started) * 1000)
    return out


def http_search(settings: Settings, analyzer, index, queries: list[bytes], warmup: int) -> list[float]:
    from web import create_app

    app = create_app(settings, analyzer=analyzer, index=index)
    base, stop = serve_in_thread(app, "serving-bench")
    url = f"{base}/api/v1/search"
    session = requests.Session()

    def call(data: bytes) -> None:
        r = session.post(url, files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "12"}, timeout=60)
        r.raise_for_status()

    try:
        return timed(call, queries, warmup)
    finally:
        stop()


def grpc_search(settings: Settings, analyzer, index, queries: list[bytes], warmup: int) -> list[float]:
    from devtools.harness import free_port
    from eyepic.v1 import recommender_pb2 as pb
    from eyepic.v1 import recommender_pb2_grpc
    from grpcapi.server import build_grpc_server

    server, port = build_grpc_server(settings, analyzer, index, address=f"127.0.0.1:{free_port()}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    try:
        return timed(lambda data: stub.Search(pb.SearchRequest(image=data, k=12), timeout=60), queries, warmup)
    finally:
        channel.close()
        server.stop(grace=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--catalog", type=int, default=200, help="catalog photos to index first")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import logging

    from app.indexing import index_catalog
    from devtools.harness import DevServerProcess, free_port, write_config
    from indexer.catalog import read_catalog
    from indexer.factory import open_index
    from serving.analyzer import Analyzer
    from serving.model_client import InProcessModelClient, latest_version_dir

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    base = Settings.from_env()
    version_dir = latest_version_dir(base.model_dir, base.classifier_name)
    work = Path(tempfile.mkdtemp(prefix="eyepic-serving-bench-"))
    settings = dataclasses.replace(base, var_dir=work, index="embedded")
    product = sorted((settings.data_dir / "clothing-small" / "train").rglob("*.jpg"))
    catalog = work / "catalog.jsonl"
    step = max(1, len(product) // args.catalog)
    catalog.write_text("".join(json.dumps({"id": f"p{i}", "image": str(p.resolve()), "title": p.parent.name}) + "\n"
                               for i, p in enumerate(product[::step][: args.catalog])))
    street = sorted((settings.data_dir / "ccp" / "photos").glob("*.jpg"))
    shots = sorted((settings.data_dir / "clothing-small" / "validation").rglob("*.jpg"))
    queries = [p.read_bytes() for pair in zip(street[::7], shots[::7]) for p in pair][: args.requests]

    local = Analyzer.from_settings(settings, InProcessModelClient(settings.model_dir))
    index = open_index(settings)
    index_catalog(read_catalog(catalog), local, index, progress=False)
    print(f"export {version_dir}; index of {index.count()} items; {len(queries)} query photos", flush=True)

    results: dict[str, dict[str, float]] = {}
    results["http_search_in_process"] = summary(http_search(settings, local, index, queries, args.warmup))
    print("in-process   ", results["http_search_in_process"], flush=True)

    config = write_config(work / "models.config", {settings.classifier_name: version_dir.parent.resolve()},
                          labels={"stable": int(version_dir.name)}, versions=(int(version_dir.name),))
    with DevServerProcess(config, free_port(), log_path=work / "devserver.log") as devserver:
        remote_settings = dataclasses.replace(settings, model_server=devserver.target)
        remote = Analyzer.from_settings(remote_settings)
        results["http_search_model_server"] = summary(http_search(remote_settings, remote, index, queries,
                                                                  args.warmup))
        print("model server ", results["http_search_model_server"], flush=True)
        results["grpc_api_search_model_server"] = summary(grpc_search(remote_settings, remote, index, queries,
                                                                      args.warmup))
        print("gRPC API     ", results["grpc_api_search_model_server"], flush=True)
    results["grpc_api_search_in_process"] = summary(grpc_search(settings, local, index, queries, args.warmup))
    print("gRPC API (in-process models)", results["grpc_api_search_in_process"], flush=True)
    index.close()

    ratio = {q: round(results["http_search_model_server"][q] / results["http_search_in_process"][q], 2)
             for q in ("p50_ms", "p95_ms")}
    print(f"model server / in-process: p50 x{ratio['p50_ms']}, p95 x{ratio['p95_ms']}")
    report = {"export": str(version_dir), "items": args.catalog, "results": results, "ratio": ratio,
              "note": "one machine, 2 shared cores; dev server is a Python stand-in for TF Serving (no batching)"}
    print(f"wrote {write_report(report, args.out or base.reports_dir / 'bench_serving.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
