"""Prometheus metrics of the gRPC API: latency by method and non-OK status codes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from services.metrics import Metrics

PREFIX = "/eyepic.v1.Recommender/"  # the API's own calls


def grpc_interceptor(metrics: Metrics) -> grpc.ServerInterceptor:
    """Times each unary gRPC API call and counts non-OK status codes.

    Only ``eyepic.v1.Recommender``'s calls: health probes and reflection
    would otherwise fill the latency histogram and the error count.
    """
    return _GrpcMetrics(metrics)


class _GrpcMetrics(grpc.ServerInterceptor):
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None or not details.method.startswith(PREFIX):
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
