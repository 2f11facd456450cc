"""Prometheus metrics of the web tier: ``/metrics``, per-endpoint latency, errors by problem type.

``install_metrics(app)`` is the one call the Flask app needs (``create_app``
makes it): it adds ``/metrics``, times every request by its URL rule
(``/api/v1/items/<path:item_id>``, not each id, so the series stay few),
counts errors by the problem ``type`` the web tier returns
(``model-unavailable``, ``invalid-image``...), and wraps the app's model
client and index (``services.metrics.instrument``) so each model call and
index query is timed too.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from services.metrics import Metrics, instrument
from web.errors import TYPE_PREFIX


def install_metrics(app: Flask, metrics: Metrics | None = None) -> Metrics:
    """``/metrics``, per-endpoint latency and error counts, timed model and index calls.

    Call it in ``create_app`` after ``app.extensions["eyepic"]`` is set. Pass
    ``metrics`` to share one set with the gRPC API in the same process.
    """
    if "eyepic_metrics" in app.extensions:  # already installed (create_app, then a launcher)
        return app.extensions["eyepic_metrics"]
    services = app.extensions["eyepic"]
    if metrics is None:
        settings = services.settings
        metrics = Metrics(multiprocess_dir=getattr(settings, "prometheus_multiproc_dir", None))
    services.index = instrument(services.analyzer, services.index, metrics)
    app.extensions["eyepic_metrics"] = metrics

    @app.before_request
    def _start_timer() -> None:
        g.eyepic_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("eyepic_started", None)
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        if started is not None and endpoint != "/metrics":
            metrics.http_latency.labels(request.method, endpoint, str(response.status_code)).observe(
                time.perf_counter() - started)
        if response.status_code >= 400:
            metrics.errors.labels("http", _problem_kind(response)).inc()
        return response

    def _metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])
    return metrics


def _problem_kind(response: Response) -> str:
    """The problem ``type`` suffix of a problem+json body, else ``http_<status>``."""
    if response.mimetype == "application/problem+json" and not response.direct_passthrough:
        body = response.get_json(silent=True) or {}
        kind = str(body.get("type", ""))
        if kind.startswith(TYPE_PREFIX):
            return kind[len(TYPE_PREFIX):]
    return f"http_{response.status_code}"
