"""Launchers: the web app (Flask's server or gunicorn) and the gRPC API, with a startup model check.

``eyepic serve`` runs the page and JSON API in Flask's threaded server
(development only; ``eyepic demo`` serves through gunicorn like production);
``eyepic serve-grpc`` runs the gRPC API beside it in one process (one
Analyzer, one Index, one set of metrics for both APIs).

``eyepic serve --workers N`` runs the Flask app in N gunicorn worker
processes (threads inside each): the app, its model client and its index are
built in each worker after the fork (``preload_app`` off), because
TensorFlow and gRPC channels do not survive a fork. Prometheus metrics from
all workers are aggregated through a multiprocess directory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from flask import Flask

from eyepic.exports import ModelUnavailable
from eyepic.settings import Settings
from serving.analyzer import Analyzer

log = logging.getLogger(__name__)

THREADS_PER_WORKER = 4  # requests wait on the model server, not the CPU


def check_models(analyzer: Analyzer) -> None:
    """Verify the served signatures against metadata.json before taking traffic.

    A mismatch is a deployment error and stops the process with the reason;
    a model server that is not up yet only warns (``/readyz`` says 503 until
    it is, and requests succeed once it answers, with no restart).
    """
    from serving.tfserving_client import ModelNotFound, SignatureMismatch

    check = getattr(analyzer.models, "check", None)
    if check is None:
        return
    for name in (analyzer.classifier, analyzer.detector):
        if not name:
            continue
        try:
            meta = check(name)
            log.info("model %s: serving version %d, signature matches metadata.json", name, meta.version)
        except SignatureMismatch:
            raise
        except ModelNotFound as exc:
            if name == analyzer.classifier:
                log.warning("classifier not served yet: %s", exc)
            else:
                log.info("no %s served (%s): whole photos stand in for garments", name, exc)
        except ModelUnavailable as exc:
            log.warning("model server not answering yet: %s", exc)


def warm_up(analyzer: Analyzer) -> float | None:
    """One photo through both models before this worker takes traffic; seconds it took, or
    None when the models cannot answer yet (a model server still starting: only a warning).

    In-process models load on first use: without this, the first search each gunicorn
    worker answers waits seconds for the load, and which request meets a cold worker is
    down to which worker accepts its connection.
    """
    import io
    import time

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (192, 256), "white")
    ImageDraw.Draw(image).rectangle((48, 40, 144, 220), fill=(40, 60, 120))  # a navy garment
    photo = io.BytesIO()
    image.save(photo, format="JPEG")
    started = time.perf_counter()
    try:
        analyzer.analyze(photo.getvalue())
    except ModelUnavailable as exc:
        log.warning("warm-up skipped, the models do not answer yet: %s", exc)
        return None
    took = time.perf_counter() - started
    log.info("worker %d warm in %.1f s", os.getpid(), took)
    return took


def build_web_app(settings: Settings) -> Flask:
    """The Flask app with metrics and a checked, warmed-up model client (called in each
    worker before it accepts a connection)."""
    from web import create_app

    analyzer = Analyzer.from_settings(settings)
    check_models(analyzer)
    warm_up(analyzer)
    return create_app(settings, analyzer=analyzer)  # create_app installs /metrics


def serve_flask(settings: Settings) -> int:
    """The page and JSON API in Flask's threaded server (one process) until stopped."""
    from web import create_app

    app = create_app(settings)
    print(f"Eyepic on http://{settings.host}:{settings.port}/", flush=True)
    app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False)
    return 0


def serve_grpc(settings: Settings, web: bool = True) -> int:
    """The gRPC API on EYEPIC_GRPC_PORT beside the page and JSON API on EYEPIC_PORT.

    One process, one Analyzer, one Index, one events store, one set of
    rate limits and metrics for both APIs. Without ``web`` only gRPC runs, and
    EYEPIC_PORT serves ``/metrics``.
    """
    from grpcapi.server import build_grpc_server
    from indexer.factory import open_index
    from services.access import AccessControl
    from services.metrics import Metrics, instrument
    from taste.event_stores import open_event_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    analyzer = Analyzer.from_settings(settings)
    check_models(analyzer)
    index = open_index(settings)
    events = open_event_store(settings)
    access = AccessControl.from_settings(settings)
    app = None
    if not web:
        from prometheus_client import start_http_server

        metrics = Metrics()
        index = instrument(analyzer, index, metrics)
        start_http_server(settings.port, addr=settings.host, registry=metrics.registry)
    else:
        from web import create_app

        app = create_app(settings, analyzer=analyzer, index=index, events=events, access=access)
        metrics = app.extensions["eyepic_metrics"]
        index = app.extensions["eyepic"].index  # the timed wrapper the web tier uses
    recommend = app.extensions["eyepic"].recommend if app is not None else None  # one profile cache
    server, port = build_grpc_server(settings, analyzer, index, metrics, events=events, access=access,
                                     recommend=recommend)
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
        events.close()
    return 0


def prepare_multiprocess_metrics(settings: Settings) -> Settings:
    """A fresh shared metrics folder, exported to prometheus-client before any worker starts."""

    path = Path(settings.prometheus_multiproc_dir or settings.var_dir / "prometheus" / f"serve-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)  # stale files from an earlier run would be summed in
    path.mkdir(parents=True)
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client imported before PROMETHEUS_MULTIPROC_DIR was set: "
                    "per-worker metrics will not aggregate")
    # prometheus-client reads this variable itself (at import, in each worker)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return dataclasses.replace(settings, prometheus_multiproc_dir=path)


def exec_serve(workers: int) -> NoReturn:
    """Replace this process with ``eyepic serve --workers N`` (same settings: the same environment).

    For a process that already ran TensorFlow (``eyepic demo`` indexes first):
    gunicorn forks its workers, and a forked TensorFlow runtime can hang.
    """
    argv = [sys.executable, "-m", "app.cli", "serve", "--workers", str(workers)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # nosec B606 # fixed argv of this interpreter, no shell, no user input


def tf_thread_env(settings: Settings, workers: int, cpus: int | None,
                  environ: Mapping[str, str]) -> dict[str, str]:
    """TensorFlow's thread-pool sizes for each of ``workers`` processes (the variables it reads
    when its runtime starts in a worker): ``tf_threads``, else the cores shared among the
    workers. Left alone where the environment already sets them."""
    threads = settings.tf_threads or max(1, (cpus or 1) // max(workers, 1))
    return {name: str(threads) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
            if name not in environ}


def serve_gunicorn(settings: Settings, workers: int) -> int:
    """Run the web tier in ``workers`` gunicorn processes until stopped."""
    from gunicorn.app.base import BaseApplication

    settings = prepare_multiprocess_metrics(settings)
    # Workers start TensorFlow after the fork (preload_app off) and inherit this environment.
    # By default each sizes its pools to every core: N workers would oversubscribe them.
    threads = tf_thread_env(settings, workers, os.cpu_count(), os.environ)
    os.environ.update(threads)
    metrics_dir = str(settings.prometheus_multiproc_dir)

    def child_exit(server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, metrics_dir)

    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": THREADS_PER_WORKER,
        # a request may wait the model deadline (with retries) plus the index
        "timeout": max(30, int(settings.model_timeout_s * 3)),
        "graceful_timeout": 10,
        "preload_app": False,
        "child_exit": child_exit,
    }

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return build_web_app(settings)

    print(f"Eyepic on http://{settings.host}:{settings.port}/ ({workers} gunicorn workers, TensorFlow threads "
          f"per worker: {os.environ['TF_NUM_INTRAOP_THREADS']})", flush=True)
    Application().run()
    return 0
