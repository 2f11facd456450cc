"""Latency of recommendations (``RecommendService.recommend``) at 10k items, embedded and Elasticsearch.

The catalog is the demo index's real items (the classifier's embeddings of
the clothing-small and clothing-extra train photos), extended to ``--items``
by re-using their vectors with small Gaussian noise (sigma ``--noise`` per
dimension, then re-normalised) under new ids and products: the real
embedding geometry, ten thousand rows. The same catalog goes into a fresh
embedded index and, when a node answers at ``EYEPIC_ES_URL``, a fresh
Elasticsearch index (deleted after).

Shoppers are simulated as in ``eyepic evaluate recommender`` (1-3 taste
modes, dislikes); each timed call follows one new event of that shopper, so
it includes folding the event into the cached profile, as in production.
Cold-start calls (unknown shoppers) are timed apart. Writes
``var/reports/bench_recommend_latency.json``.

    .venv/bin/python -m bench.recommend_latency --items 10000 --shoppers 40 --calls 400
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from app.recommender_sim import candidate_modes, make_shopper
from bench.common import latency_summary, write_report
from eyepic.schema import Item
from eyepic.settings import Settings
from indexer.base import Index, normalise
from indexer.factory import open_index
from services.recommend import RecommendService
from taste.events import Event, MemoryEventStore


def catalog(settings: Settings, n: int, noise: float, seed: int = 0) -> tuple[list[Item], int]:
    """The demo index's items, extended to ``n`` by noisy copies; also how many were real."""
    index = open_index(settings)
    try:
        real = [it for it in (index.get(i) for i in sorted(index.ids())) if it is not None]
    finally:
        index.close()
    if not real:
        raise SystemExit("the demo index is empty: run `eyepic demo` (or `eyepic evaluate recommender`) first")
    rng = np.random.default_rng(seed)
    items = list(real)
    copy = 0
    while len(items) < n:
        base = real[copy % len(real)]
        vector = normalise(base.embedding + rng.normal(scale=noise, size=base.embedding.shape)).astype(np.float32)
        items.append(dataclasses.replace(base, id=f"{base.id}~{copy}", product_id=f"{base.product_id}~{copy}",
                                         embedding=vector))
        copy += 1
    return items[:n], len(real)


def measure(index: Index, items: list[Item], settings: Settings, shoppers: int, calls: int, k: int,
            seed: int) -> dict:
    rng = random.Random(seed)  # nosec B311: reproducible simulated shoppers
    store = MemoryEventStore()
    service = RecommendService(settings, index, store)
    modes = candidate_modes(items, 40)
    people = [make_shopper(f"bench-{n}", modes, rng) for n in range(shoppers)]
    pools = {p.user_id: [i for i in items if p.relevant(i)] for p in people}
    clock = iter(range(10**9))
    for p in people:  # some history first: 10 events each
        for _ in range(10):
            item = rng.choice(pools[p.user_id])
            store.add(Event(p.user_id, "like", item.id, 1.7e9 + next(clock), f"w{next(clock)}"))
    for p in people[:5]:  # warm-up: first profiles, spread lists, index caches
        service.recommend(service.recommend_query(user_id=p.user_id, k=k, filters={}))
    personal, cold, clusters = [], [], []
    for n in range(calls):
        p = people[n % len(people)]
        kind = rng.choice(("click", "like", "dislike")) if rng.random() < 0.9 else "view"
        item = rng.choice(pools[p.user_id]) if kind != "dislike" else rng.choice(items)
        store.add(Event(p.user_id, kind, item.id, 1.7e9 + next(clock), f"b{next(clock)}"))
        started = time.perf_counter()
        result = service.recommend(service.recommend_query(user_id=p.user_id, k=k, filters={}))
        personal.append((time.perf_counter() - started) * 1000)
        clusters.append(len(result.clusters))
        if n % 10 == 0:
            started = time.perf_counter()
            service.recommend(service.recommend_query(user_id=f"new-{n}", k=k, filters={}))
            cold.append((time.perf_counter() - started) * 1000)
    return {"personal": latency_summary(personal), "cold_start": latency_summary(cold),
            "mean_clusters": round(float(np.mean(clusters)), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--noise", type=float, default=0.01, help="sigma per dimension of the copies' noise")
    parser.add_argument("--shoppers", type=int, default=40)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--k", type=int, default=24)
    parser.add_argument("--no-es", action="store_true", help="embedded only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = Settings.from_env(index="embedded")
    items, real = catalog(settings, args.items, args.noise)
    report: dict = {"items": len(items), "real_items": real, "copies_noise_sigma": args.noise, "k": args.k,
                    "calls": args.calls, "shoppers": args.shoppers,
                    "note": f"{real} real catalog embeddings; the rest re-use them with Gaussian noise "
                            f"(sigma {args.noise} per dimension) under new ids and products",
                    "backends": {}, "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
                    "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(dir=settings.var_dir) as tmp:
        embedded = open_index(dataclasses.replace(settings, var_dir=Path(tmp), index_name="bench-recommend"))
        try:
            embedded.upsert(items)
            report["backends"]["embedded"] = measure(embedded, items, settings, args.shoppers, args.calls, args.k, 0)
        finally:
            embedded.close()
    print(json.dumps(report["backends"]["embedded"]), flush=True)
    if not args.no_es:
        es_settings = Settings.from_env(index="elasticsearch", index_name=f"eyepic-bench-recommend-{os.getpid()}")
        from indexer.elasticsearch import ElasticsearchIndex

        elastic = ElasticsearchIndex.from_settings(es_settings)
        if elastic.ping():
            try:
                elastic.upsert(items)
                report["backends"]["elasticsearch"] = measure(elastic, items, es_settings, args.shoppers,
                                                              args.calls, args.k, 0)
                report["backends"]["elasticsearch"]["server_version"] = elastic.server_version()
            finally:
                elastic.drop_all()
                elastic.close()
        else:
            report["backends"]["elasticsearch"] = {"skipped": f"no node answers at {es_settings.es_url}"}
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]  # a shared machine inflates tails
    out = write_report(report, args.out or settings.reports_dir / "bench_recommend_latency.json")
    print(json.dumps(report, indent=2))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
