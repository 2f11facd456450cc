"""Prometheus metrics for the web tier, the gRPC API, model calls and index queries.

``install_metrics(app)`` is the one call the Flask app needs: it adds
``/metrics``, times every request by its URL rule (``/api/v1/items/<path:item_id>``,
not each id, so the series stay few), counts errors by the problem ``type``
the web tier returns (``model-unavailable``, ``invalid-image``...), and wraps
the app's model client and index so each model call and index query is timed
too. The gRPC API adds ``grpc_interceptor(metrics)`` to its server.

Each ``Metrics`` owns its registry (two apps in one test session do not
collide). Under gunicorn (``eyepic serve --workers N``) each worker is its
own process: ``PROMETHEUS_MULTIPROC_DIR`` (set by the launcher before any
worker starts) makes prometheus-client write values to shared files, and
``/metrics`` then aggregates all workers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from eyepic.schema import Filters, Hit, Item
from serving.model_client import ModelMetadata, ModelUnavailable

# request latencies span a cached 304 (~1 ms) to a cold search on CPU (seconds)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INDEX_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
PROBLEM_PREFIX = "urn:eyepic:problem:"


class Metrics:
    """The metric families; one instance per process-level app (web + gRPC share it)."""

    def __init__(self, registry: CollectorRegistry | None = None, multiprocess_dir: Path | str | None = None):
        self.registry = registry or CollectorRegistry()
        self.multiprocess_dir = Path(multiprocess_dir) if multiprocess_dir else None
        self.http_latency = Histogram(
            "eyepic_http_request_duration_seconds", "HTTP request latency by endpoint",
            ["method", "endpoint", "status"], registry=self.registry, buckets=REQUEST_BUCKETS)
        self.grpc_latency = Histogram(
            "eyepic_grpc_request_duration_seconds", "Eyepic gRPC API latency by method",
            ["method", "code"], registry=self.registry, buckets=REQUEST_BUCKETS)
        self.model_latency = Histogram(
            "eyepic_model_call_duration_seconds", "Model call latency (in-process or TF Serving)",
            ["model", "outcome"], registry=self.registry, buckets=REQUEST_BUCKETS)
        self.model_batch = Histogram(
            "eyepic_model_call_images", "Images per model call", ["model"], registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.index_latency = Histogram(
            "eyepic_index_query_duration_seconds", "Index query latency", ["operation", "outcome"],
            registry=self.registry, buckets=INDEX_BUCKETS)
        self.errors = Counter(
            "eyepic_errors_total", "Errors by kind (problem type, gRPC code, model/index failure)",
            ["source", "kind"], registry=self.registry)

    @contextlib.contextmanager
    def timed(self, histogram: Histogram, label: str, source: str) -> Iterator[None]:
        """Observe the block's latency in ``histogram`` under (``label``, outcome) and
        count a failure under ``source``; outcome is ok, unavailable (ModelUnavailable) or error."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except Exception as exc:
            outcome = "unavailable" if isinstance(exc, ModelUnavailable) else "error"
            self.errors.labels(source, type(exc).__name__).inc()
            raise
        finally:
            histogram.labels(label, outcome).observe(time.perf_counter() - started)

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type (all workers' values under gunicorn)."""
        if self.multiprocess_dir is not None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class TimedModelClient:
    """A ModelClient decorator: latency and batch size of every ``predict``, by model."""

    def __init__(self, inner: Any, metrics: Metrics):
        self.inner = inner
        self.metrics = metrics

    def predict(self, model_name: str, images: list[bytes]) -> dict[str, np.ndarray]:
        self.metrics.model_batch.labels(model_name).observe(len(images))
        with self.metrics.timed(self.metrics.model_latency, model_name, source="model"):
            return self.inner.predict(model_name, images)

    def metadata(self, model_name: str) -> ModelMetadata:
        return self.inner.metadata(model_name)

    def ready(self, model_name: str) -> bool:
        return self.inner.ready(model_name)

    def __getattr__(self, name: str) -> Any:  # check(), close(), reload() of the wrapped client
        return getattr(self.inner, name)


class TimedIndex:
    """An Index decorator: latency of ``search``, ``get`` and ``count`` queries."""

    def __init__(self, inner: Any, metrics: Metrics):
        self.inner = inner
        self.metrics = metrics

    def _timed(self, operation: str, call: Callable[[], Any]) -> Any:
        with self.metrics.timed(self.metrics.index_latency, operation, source="index"):
            return call()

    def search(self, vector: np.ndarray, k: int, filters: Filters = Filters(),
               exclude_ids: Iterable[str] = (), collapse: bool = True) -> list[Hit]:
        return self._timed("search", lambda: self.inner.search(vector, k, filters, exclude_ids, collapse))

    def get(self, item_id: str) -> Item | None:
        return self._timed("get", lambda: self.inner.get(item_id))

    def count(self, filters: Filters = Filters()) -> int:
        return self._timed("count", lambda: self.inner.count(filters))

    def upsert(self, items: Sequence[Item]) -> None:
        return self.inner.upsert(items)

    def __getattr__(self, name: str) -> Any:  # delete, ids, facets, close, versioning...
        return getattr(self.inner, name)


def instrument(analyzer: Any, index: Any, metrics: Metrics) -> Any:
    """Wrap ``analyzer.models`` in place (shared by web and gRPC) and return the timed index."""
    models = getattr(analyzer, "models", None)
    if models is not None:
        inner = models.inner if isinstance(models, TimedModelClient) else models
        analyzer.models = TimedModelClient(inner, metrics)
    inner_index = index.inner if isinstance(index, TimedIndex) else index
    return TimedIndex(inner_index, metrics)


def install_metrics(app: Any, metrics: Metrics | None = None) -> Metrics:
    """``/metrics``, per-endpoint latency and error counts, timed model and index calls.

    Call it in ``create_app`` after ``app.extensions["eyepic"]`` is set. Pass
    ``metrics`` to share one set with the gRPC API in the same process.
    """
    from flask import Response, g, request

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
    def _observe(response: Any) -> Any:
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


def _problem_kind(response: Any) -> str:
    """The problem ``type`` suffix of a problem+json body, else ``http_<status>``."""
    if response.mimetype == "application/problem+json" and not response.direct_passthrough:
        body = response.get_json(silent=True) or {}
        kind = str(body.get("type", ""))
        if kind.startswith(PROBLEM_PREFIX):
            return kind[len(PROBLEM_PREFIX):]
    return f"http_{response.status_code}"


def grpc_interceptor(metrics: Metrics) -> grpc.ServerInterceptor:
    """Times each unary gRPC API call and counts non-OK status codes."""
    return _GrpcMetrics(metrics)


class _GrpcMetrics(grpc.ServerInterceptor):
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        metrics = self.metrics

        def timed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                return inner(request, context)
            finally:
                code = context.code() or grpc.StatusCode.OK
                name = code.name if isinstance(code, grpc.StatusCode) else str(code)
                metrics.grpc_latency.labels(method, name).observe(time.perf_counter() - started)
                if name != "OK":
                    metrics.errors.labels("grpc", name).inc()

        return grpc.unary_unary_rpc_method_handler(
            timed, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
