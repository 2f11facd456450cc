"""Prometheus metrics for the web tier, the gRPC API, model calls and index queries.

In the service layer because both APIs share one set (one process, one
Analyzer, one Index).

``Metrics`` holds the metric families; ``instrument`` wraps a model client
and an index so each model call and index query is timed. The fronts hook
in their own requests: ``web.metrics.install_metrics(app)`` (``/metrics``,
per-endpoint latency, errors by problem type) and
``grpcapi.metrics.grpc_interceptor(metrics)``.

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

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from eyepic.exports import ModelClient, ModelMetadata, ModelUnavailable
from eyepic.schema import Filters, Hit, Item
from indexer.base import Index, KnnQuery
from services.search import AnalyzerLike

# request latencies span a cached 304 (~1 ms) to a cold search on CPU (seconds)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INDEX_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


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

    def __init__(self, inner: ModelClient, metrics: Metrics):
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

    def __init__(self, inner: Index, metrics: Metrics):
        self.inner = inner
        self.metrics = metrics

    def _timed(self, operation: str, call: Callable[[], Any]) -> Any:
        with self.metrics.timed(self.metrics.index_latency, operation, source="index"):
            return call()

    def search(self, vector: np.ndarray, k: int, filters: Filters = Filters(),
               exclude_ids: Iterable[str] = (), collapse: bool = True) -> list[Hit]:
        return self._timed("search", lambda: self.inner.search(vector, k, filters, exclude_ids, collapse))

    def search_many(self, queries: Sequence[KnnQuery], exclude_ids: Iterable[str] = (),
                    collapse: bool = True) -> list[list[Hit]]:
        return self._timed("search_many", lambda: self.inner.search_many(queries, exclude_ids, collapse))

    def get(self, item_id: str) -> Item | None:
        return self._timed("get", lambda: self.inner.get(item_id))

    def count(self, filters: Filters = Filters()) -> int:
        return self._timed("count", lambda: self.inner.count(filters))

    def upsert(self, items: Sequence[Item]) -> None:
        return self.inner.upsert(items)

    def __getattr__(self, name: str) -> Any:  # delete, ids, facets, close, versioning...
        return getattr(self.inner, name)


def instrument(analyzer: AnalyzerLike, index: Index, metrics: Metrics) -> TimedIndex:
    """Wrap ``analyzer.models`` in place (shared by web and gRPC) and return the timed index."""
    models = getattr(analyzer, "models", None)
    if models is not None:
        inner = models.inner if isinstance(models, TimedModelClient) else models
        analyzer.models = TimedModelClient(inner, metrics)
    inner_index = index.inner if isinstance(index, TimedIndex) else index
    return TimedIndex(inner_index, metrics)
