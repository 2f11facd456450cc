"""Index benchmark: Elasticsearch against the embedded index.

Measures, per catalog size (default 10k and 100k vectors of 512-d):
indexing throughput (docs/s, until searchable), query latency p50/p95
(end to end from Python, as the app sees it) and recall@k against exact
brute force, without a filter and with a 10% filter (one shop of ten).
Prints a table and writes a JSON report (default var/reports/index_bench.json).

Vectors are clustered like embeddings (about 20 near neighbours each), not
uniform noise, where every neighbour is equally far and recall means little.

    .venv/bin/python -m bench.index_bench                    # ~4 min on 2 cores
    .venv/bin/python -m bench.index_bench --sizes 10000 --backends embedded

Bulk indexing rate alone, before/after in one run: ``--items 100000`` (one size,
Elasticsearch only) with ``--es-bulk 500x1,1000x2`` (documents per request x
requests in flight; one Elasticsearch row each, default: the settings').

    EYEPIC_ES_URL=http://127.0.0.1:9260 .venv/bin/python -m bench.index_bench --items 100000 --es-bulk 500x1,1000x2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from eyepic.schema import Filters, Item
from eyepic.settings import Settings
from indexer.base import normalise
from indexer.embedded import EmbeddedIndex

SHOPS = 10
FILTERS = {"none": Filters(), "10%": Filters(shop=("shop-3",))}


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 20), dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), size=n)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 20_000):  # in slices: 100k x 512 float64 noise would be 400 MB
        stop = min(n, start + 20_000)
        out[start:stop] = centres[labels[start:stop]] + 0.9 * rng.standard_normal(
            (stop - start, dim), dtype=np.float32)
    return normalise(out)


def items_for(vectors: np.ndarray) -> list[Item]:
    return [Item(id=f"b{i}", embedding=v, group="top", type="t-shirt", color="black",
                 shop=f"shop-{i % SHOPS}", title=f"bench item {i}") for i, v in enumerate(vectors)]


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None) -> list[set[str]]:
    scores = queries @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return [{f"b{i}" for i in row} for row in top]


def measure(index: Any, queries: np.ndarray, truth: list[set[str]], k: int, filters: Filters) -> dict:
    for q in queries[:5]:  # warm caches, connections, the faiss matrix
        index.search(q, k, filters)
    latencies, found = [], 0
    for q, expected in zip(queries, truth, strict=True):
        start = time.perf_counter()
        hits = index.search(q, k, filters)
        latencies.append((time.perf_counter() - start) * 1000)
        found += len(expected & {h.item.id for h in hits})
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "recall_at_k": round(found / (k * len(queries)), 4),
        "queries": len(queries),
    }


def load(index: Any, items: list[Item], batch: int) -> float:
    start = time.perf_counter()
    loader = index.bulk_load() if hasattr(index, "bulk_load") else None
    if loader is None:
        for i in range(0, len(items), batch):
            index.upsert(items[i:i + batch])
    else:
        with loader:  # refresh off while loading; the refresh at exit is part of the time
            for i in range(0, len(items), batch):
                index.upsert(items[i:i + batch])
    return time.perf_counter() - start


def open_backend(name: str, n: int, tmp: Path, settings: Settings, bulk: tuple[int, int] | None = None) -> Any:
    if name == "embedded":
        return EmbeddedIndex(tmp / f"bench-{n}.sqlite")
    from indexer.elasticsearch import ElasticsearchIndex

    es_settings = dataclasses.replace(settings, index_name=f"eyepic-bench-{n}-{os.getpid()}")
    if bulk is not None:
        es_settings = dataclasses.replace(es_settings, es_bulk_chunk=bulk[0], es_bulk_threads=bulk[1])
    index = ElasticsearchIndex.from_settings(es_settings)
    if not index.ping():
        raise SystemExit(f"no Elasticsearch at {settings.es_url}: run scripts/elasticsearch.sh start")
    return index


def run(args: argparse.Namespace) -> dict:
    settings = Settings.from_env()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "params": {"dim": args.dim, "k": args.k, "queries": args.queries, "batch": args.batch,
                   "filter_10pct": "shop = shop-3 (1 of 10 shops)",
                   "vectors": "synthetic: clustered Gaussian noise, normalised to unit length"},
        "elasticsearch": {"url": settings.es_url, "num_candidates": settings.es_num_candidates,
                          "m": settings.es_hnsw_m, "ef_construction": settings.es_ef_construction,
                          "rescore_oversample": settings.es_rescore_oversample},
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="eyepic-bench-") as tmpdir:
        for n in args.sizes:
            vectors = clustered(n + args.queries, args.dim, seed=n)
            base, queries = vectors[:n], vectors[n:]
            items = items_for(base)
            shops = np.arange(n) % SHOPS == 3
            truth = {label: exact_top_k(base, queries, args.k, shops if label == "10%" else None)
                     for label in FILTERS}
            runs = [(b, bulk) for b in args.backends for bulk in (args.es_bulk if b == "elasticsearch" else [None])]
            for backend, bulk in runs:
                index = open_backend(backend, n, Path(tmpdir), settings, bulk)
                try:
                    seconds = load(index, items, args.batch)
                    row: dict[str, Any] = {"backend": backend, "n": n, "index_s": round(seconds, 1),
                                           "docs_per_s": round(n / seconds),
                                           "load_average": os.getloadavg()}
                    if backend == "elasticsearch":
                        row["bulk_chunk"], row["bulk_threads"] = index.bulk_chunk, index.bulk_threads
                    if backend == "elasticsearch":
                        report["elasticsearch"]["version"] = index.server_version()
                        segments = index.client.indices.segments(index=index.alias)["indices"]
                        row["segments"] = sum(len(s["segments"]) for idx in segments.values()
                                              for shard in idx["shards"].values() for s in shard)
                    for label, filters in FILTERS.items():
                        row[f"filter_{label}"] = measure(index, queries, truth[label], args.k, filters)
                    report["results"].append(row)
                    print_row(row)
                finally:
                    if backend == "elasticsearch":
                        index.drop_all()
                    index.close()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return report


def print_row(row: dict) -> None:
    for label in FILTERS:
        m = row[f"filter_{label}"]
        bulk = f" bulk {row['bulk_chunk']}x{row['bulk_threads']}" if "bulk_chunk" in row else ""
        print(f"{row['backend']:>13}{bulk} n={row['n']:>7} filter={label:>4}  p50 {m['p50_ms']:7.2f} ms  "
              f"p95 {m['p95_ms']:7.2f} ms  recall@k {m['recall_at_k']:.3f}  "
              f"indexing {row['docs_per_s']:>6} docs/s ({row['index_s']} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["embedded", "elasticsearch"])
    parser.add_argument("--items", type=int, help="one catalog size, Elasticsearch only (the bulk rate)")
    parser.add_argument("--es-bulk", type=lambda s: [tuple(int(v) for v in c.split("x")) for c in s.split(",")],
                        default=[None], help="documents per request x requests in flight, e.g. 500x1,1000x2")
    parser.add_argument("--out", type=Path, default=Path("var/reports/index_bench.json"))
    args = parser.parse_args(argv)
    if args.items:
        args.sizes, args.backends = [args.items], ["elasticsearch"]
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
