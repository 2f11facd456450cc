"""The standard gRPC health service (``grpc.health.v1.Health``) and server reflection.

Clusters and generic tools speak these, not our stubs: the kubelet's native
``grpc:`` probe calls ``Health/Check``, ``grpcurl`` and other clients list
and call ``eyepic.v1.Recommender`` through reflection.

Health answers for the whole server (``""``) and for ``eyepic.v1.Recommender``:
NOT_SERVING until the analyzer's model is ready and the index answers (the
same two checks as the web tier's ``/readyz``), SERVING while both hold, and
NOT_SERVING again when the model server or the index goes away. A third
name, ``liveness``, is SERVING from start to shutdown whatever the model and
the index do (the web tier's ``/healthz``): a liveness probe must not restart
pods because TF Serving or Elasticsearch is down, a restart fixes neither.

A background watcher runs the checks every ``interval_s`` seconds and sets
the statuses, rather than a check per health call: a ``Check`` then costs no
model-server round trip or index query (probes from every kubelet and every
client's health checking stay free, however many there are), ``Watch``
streams get pushed a change as soon as the watcher sees it, and a slow model
server (one ready() call can wait for its deadline) never makes a probe time
out. A status is at most ``interval_s`` old.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from eyepic.exports import ModelUnavailable
from eyepic.v1 import recommender_pb2 as pb
from indexer.base import Index, IndexUnavailable
from services.search import AnalyzerLike

log = logging.getLogger(__name__)

RECOMMENDER = pb.DESCRIPTOR.services_by_name["Recommender"].full_name  # "eyepic.v1.Recommender"
SERVICES = ("", RECOMMENDER)  # "" = the whole server; both follow the model and the index
LIVENESS = "liveness"  # the process answers (for liveness and startup probes)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DEFAULT_INTERVAL_S = 5.0


def readiness(analyzer: AnalyzerLike, index: Index) -> dict[str, str]:
    """``{"model": ..., "index": ...}``: "ok" or why not (the web tier's /readyz checks)."""
    checks: dict[str, str] = {}
    try:
        checks["model"] = "ok" if analyzer.ready() else "not loaded"
    except ModelUnavailable as exc:
        checks["model"] = str(exc)
    try:
        index.count()
        checks["index"] = "ok"
    except (IndexUnavailable, OSError) as exc:
        checks["index"] = str(exc)
    return checks


class HealthWatcher:
    """Keeps a ``HealthServicer``'s statuses in step with the model and the index."""

    def __init__(self, servicer: health.HealthServicer, analyzer: AnalyzerLike, index: Index,
                 interval_s: float = DEFAULT_INTERVAL_S):
        self.servicer = servicer
        self.analyzer = analyzer
        self.index = index
        self.interval_s = interval_s
        self.serving = False  # what the statuses say (set below)
        self._checked = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for service in SERVICES:
            servicer.set(service, NOT_SERVING)
        servicer.set(LIVENESS, SERVING)

    def check_once(self) -> bool:
        """Run the checks and set the statuses; True when serving."""
        try:
            checks = readiness(self.analyzer, self.index)
        except Exception as exc:  # a bug in a check must not kill the watcher: report not serving
            log.exception("health check failed")
            checks = {"check": repr(exc)}
        serving = all(why == "ok" for why in checks.values())
        if self._stop.is_set():
            return serving  # shutting down: enter_graceful_shutdown already said NOT_SERVING
        first, self._checked = not self._checked, True
        if serving == self.serving and not first:
            return serving  # set() only on a change: each set() is a message to every Watch stream
        if serving:
            log.info("gRPC health: SERVING (model and index answer)")
        else:
            log.warning("gRPC health: NOT_SERVING (%s)",
                        "; ".join(f"{name}: {why}" for name, why in checks.items() if why != "ok"))
        if serving == self.serving:
            return serving
        self.serving = serving
        for service in SERVICES:
            self.servicer.set(service, SERVING if serving else NOT_SERVING)
        return serving

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="eyepic-grpc-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float | None = None) -> None:
        """Say NOT_SERVING to every caller and watcher, and end the thread (waiting up to ``timeout``)."""
        self._stop.set()
        self.servicer.enter_graceful_shutdown()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after its current check, if one is running)."""
        if self._thread is not None:
            self._thread.join(timeout)


class HealthCheckedServer(grpc.Server):
    """A ``grpc.Server`` whose start and stop also start and stop its health watcher.

    Callers keep using it as the plain server (``start``, ``stop``,
    ``wait_for_termination``): stopping says NOT_SERVING first, so probes
    and clients see it during the grace period, then ends the watcher.
    """

    def __init__(self, server: grpc.Server, watcher: HealthWatcher):
        self.server = server
        self.watcher = watcher

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None:
        self.server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        self.server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self.server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self.server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        self.server.start()
        self.watcher.start()

    def stop(self, grace: float | None) -> threading.Event:
        self.watcher.stop(timeout=0)  # NOT_SERVING at once, before the grace period
        stopped = self.server.stop(grace)
        self.watcher.join(timeout=grace or 1.0)  # a check in flight (a model-server deadline) ends it
        return stopped

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


def add_health_and_reflection(server: grpc.Server, analyzer: AnalyzerLike, index: Index,
                              interval_s: float = DEFAULT_INTERVAL_S) -> HealthCheckedServer:
    """Register ``grpc.health.v1.Health`` and server reflection on ``server``; returns it wrapped.

    Statuses start NOT_SERVING; the watcher starts with the returned server.
    """
    servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    watcher = HealthWatcher(servicer, analyzer, index, interval_s)
    names = (RECOMMENDER, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    return HealthCheckedServer(server, watcher)
