"""CLI subcommands of the serving tier (gRPC API, production web server)."""

from __future__ import annotations

import argparse
import logging
from typing import Any


def cmd_serve_grpc(settings: Any, args: argparse.Namespace) -> int:
    """The gRPC API on EYEPIC_GRPC_PORT beside the page and JSON API on EYEPIC_PORT.

    One process, one Analyzer, one Index, one set of metrics for both APIs.
    With ``--no-web`` only gRPC runs, and EYEPIC_PORT serves ``/metrics``.
    """
    from indexer.factory import open_index
    from serving.analyzer import Analyzer
    from serving.grpc_api import build_grpc_server
    from serving.metrics import Metrics, install_metrics, instrument
    from serving.production import check_models

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    analyzer = Analyzer.from_settings(settings)
    check_models(analyzer)
    index = open_index(settings)
    app = None
    if args.no_web:
        from prometheus_client import start_http_server

        metrics = Metrics()
        index = instrument(analyzer, index, metrics)
        start_http_server(settings.port, addr=settings.host, registry=metrics.registry)
    else:
        from web import create_app

        app = create_app(settings, analyzer=analyzer, index=index)
        metrics = app.extensions.get("eyepic_metrics") or install_metrics(app)
        index = app.extensions["eyepic"].index  # the timed wrapper the web tier uses
    server, port = build_grpc_server(settings, analyzer, index, metrics)
    server.start()
    print(f"Eyepic gRPC API (eyepic.v1.Recommender) on {settings.host}:{port}", flush=True)
    try:
        if app is not None:
            print(f"Eyepic on http://{settings.host}:{settings.port}/", flush=True)
            app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False)
        else:
            print(f"metrics on http://{settings.host}:{settings.port}/metrics", flush=True)
            server.wait_for_termination()
    finally:
        server.stop(grace=2.0).wait()
        index.close()
    return 0


def add_commands(sub: Any) -> None:
    """Register this package's ``eyepic`` subcommands on ``sub``."""
    grpc_api = sub.add_parser("serve-grpc", help="serve the gRPC API (eyepic.v1.Recommender) beside the web app")
    grpc_api.add_argument("--no-web", action="store_true", help="gRPC only; EYEPIC_PORT then serves /metrics")
    grpc_api.set_defaults(func=cmd_serve_grpc)
