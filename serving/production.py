"""Production processes: the web tier under gunicorn, and a startup model check.

``eyepic serve --workers N`` runs the Flask app in N gunicorn worker
processes (threads inside each): the app, its model client and its index are
built in each worker after the fork (``preload_app`` off), because
TensorFlow and gRPC channels do not survive a fork. Prometheus metrics from
all workers are aggregated through a multiprocess directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from serving.model_client import ModelUnavailable

log = logging.getLogger(__name__)

THREADS_PER_WORKER = 4  # requests wait on the model server, not the CPU


def check_models(analyzer: Any) -> None:
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


def build_web_app(settings: Any) -> Any:
    """The Flask app with metrics and a checked model client (called in each worker)."""
    from serving.analyzer import Analyzer
    from serving.metrics import install_metrics
    from web import create_app

    analyzer = Analyzer.from_settings(settings)
    check_models(analyzer)
    app = create_app(settings, analyzer=analyzer)
    if "eyepic_metrics" not in app.extensions:
        install_metrics(app)
    return app


def prepare_multiprocess_metrics(settings: Any) -> Any:
    """A fresh shared metrics folder, exported to prometheus-client before any worker starts."""
    import dataclasses

    path = Path(settings.prometheus_multiproc_dir or settings.var_dir / "prometheus" / f"serve-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)  # stale files from an earlier run would be summed in
    path.mkdir(parents=True)
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client imported before PROMETHEUS_MULTIPROC_DIR was set: "
                    "per-worker metrics will not aggregate")
    # prometheus-client reads this variable itself (at import, in each worker)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return dataclasses.replace(settings, prometheus_multiproc_dir=path)


def serve_gunicorn(settings: Any, workers: int) -> int:
    """Run the web tier in ``workers`` gunicorn processes until stopped."""
    from gunicorn.app.base import BaseApplication

    settings = prepare_multiprocess_metrics(settings)
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

        def load(self) -> Any:
            return build_web_app(settings)

    print(f"Eyepic on http://{settings.host}:{settings.port}/ ({workers} gunicorn workers)", flush=True)
    Application().run()
    return 0
