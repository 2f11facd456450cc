"""Events store benchmark: write and read latency of SQLite against Elasticsearch.

Per store, as the API sees it (``EventStore`` from ``open_event_store``):
``add`` of a new event (p50/p95), ``add`` of a retry (idempotent no-op),
``events(user)`` right after writing (reads its own writes) for a user with
``--per-user`` events, and ``forget``; then ``POST /api/v1/users/<id>/events``
through the Flask app in process (WSGI, no socket: validation, the catalog
lookup in an embedded index, access control and the store, as a request
with a session token costs). The SQLite store is durable per write
(WAL, synchronous=FULL); the Elasticsearch store refreshes the shard per
write so the next read sees it. Prints a table and writes
var/reports/events_bench.json.

    .venv/bin/python -m bench.events_bench                      # ~1 min
    .venv/bin/python -m bench.events_bench --stores sqlite --writes 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import latency_summary, write_report
from eyepic.settings import Settings
from taste.event_stores import open_event_store
from taste.events import Event, EventStore


def timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def bench_store(store: EventStore, writes: int, per_user: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    users = [f"bench-{run}-{u}" for u in range(max(1, writes // per_user))]
    now = time.time()
    add_ms, retry_ms, read_ms, forget_ms = [], [], [], []
    for i in range(writes):
        user = users[i % len(users)]
        event = Event(user, "like" if i % 3 else "view", f"item-{i % 500}", now + i * 1e-3, f"e{i}")
        add_ms.append(timed(store.add, event))
        if i % 10 == 0:
            retry_ms.append(timed(store.add, event))
    for user in users:
        read_ms.append(timed(store.events, user))
    for user in users:
        forget_ms.append(timed(store.forget, user))
    return {"add": latency_summary(add_ms), "retry": latency_summary(retry_ms),
            "read_user": latency_summary(read_ms), "forget_user": latency_summary(forget_ms),
            "users": len(users), "events_per_user": per_user}


class _NoModels:
    """The analyzer slot of the app: events never run a model."""

    model_version = "none"

    def ready(self) -> bool:
        return True

    def analyze(self, data: bytes, box: Any = None) -> Any:
        raise RuntimeError("the events benchmark runs no search")


def bench_http(settings: Settings, writes: int) -> dict[str, Any]:
    """p50/p95 of event writes through the app: session token, JSON body, catalog check, store."""
    import numpy as np

    from eyepic.schema import Item
    from indexer.embedded import EmbeddedIndex
    from web import create_app

    index = EmbeddedIndex(settings.index_dir / "bench.sqlite")
    rng = np.random.default_rng(0)
    index.upsert([Item(id=f"item-{i}", embedding=rng.normal(size=32).astype(np.float32), group="top",
                       type="t-shirt", color="black") for i in range(500)])
    store = open_event_store(settings)
    try:
        app = create_app(settings, analyzer=_NoModels(), index=index, events=store)
        client = app.test_client()
        session = client.post("/api/v1/session").get_json()
        headers = {"Authorization": f"Bearer {session['token']}"}
        url = f"/api/v1/users/{session['user_id']}/events"
        ms = []
        for i in range(writes):
            started = time.perf_counter()
            answer = client.post(url, json={"kind": "like", "item_id": f"item-{i % 500}", "event_id": f"e{i}"},
                                 headers=headers)
            ms.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 201:
                raise SystemExit(f"write {i} answered {answer.status_code}: {answer.get_json()}")
        return latency_summary(ms)
    finally:
        drop = getattr(store, "drop", None)
        if drop is not None:
            drop()
        store.close()
        index.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "elasticsearch"],
                        choices=["memory", "sqlite", "elasticsearch"])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=50)
    parser.add_argument("--es-no-refresh", action="store_true",
                        help="also measure Elasticsearch without the per-write refresh (reads may miss a write)")
    parser.add_argument("--http-writes", type=int, default=300, help="0 skips the HTTP measurement")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    base = Settings.from_env()
    report: dict[str, Any] = {"writes": args.writes, "stores": {}}
    variants = [(kind, kind) for kind in args.stores]
    if args.es_no_refresh and "elasticsearch" in args.stores:
        variants.append(("elasticsearch", "es-no-refresh"))
    with tempfile.TemporaryDirectory(prefix="events-bench-") as tmp:
        for kind, label in variants:
            settings = Settings.from_env(var_dir=Path(tmp) / label, events_store=kind,
                                         events_index_name=f"eyepic-events-bench-{uuid.uuid4().hex[:6]}")
            store = open_event_store(settings)
            if label == "es-no-refresh":
                store.refresh = False  # type: ignore[attr-defined]
            try:
                report["stores"][label] = bench_store(store, args.writes, args.per_user)
            finally:
                drop = getattr(store, "drop", None)
                if drop is not None:
                    drop()
                store.close()
        for kind in args.stores if args.http_writes else []:
            settings = Settings.from_env(var_dir=Path(tmp) / f"http-{kind}", events_store=kind,
                                         events_index_name=f"eyepic-events-bench-{uuid.uuid4().hex[:6]}",
                                         rate_ip_per_s=0, rate_user_per_s=0, rate_key_per_s=0)
            report["stores"][kind]["http_post"] = bench_http(settings, args.http_writes)
    print(f"{'store':<14}{'add p50':>9}{'add p95':>9}{'retry p50':>11}{'read p50':>10}{'forget p50':>12}"
          f"{'HTTP p50':>10}{'HTTP p95':>10}  (ms)")
    for kind, r in report["stores"].items():
        http = r.get("http_post", {})
        print(f"{kind:<14}{r['add']['p50_ms']:>9}{r['add']['p95_ms']:>9}{r['retry']['p50_ms']:>11}"
              f"{r['read_user']['p50_ms']:>10}{r['forget_user']['p50_ms']:>12}"
              f"{http.get('p50_ms', '-'):>10}{http.get('p95_ms', '-'):>10}")
    out = write_report(report, args.out or base.reports_dir / "events_bench.json")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
