"""One photo's garment searches: one ``Index.search`` per garment against one ``search_many``.

A street photo comes back with three or four garments, and ``SearchService.search``
asks the index for each one's neighbours. On Elasticsearch that was one HTTP round
trip per garment; ``search_many`` sends them as one ``_msearch``. This bench times
both ways on the same queries, interleaved (each goes first in every other round),
for each backend: ``--garments`` queries (each with its own group filter, as the
service sends them) over a catalog of ``--items`` clustered vectors at the released
embedding size (128), ``--rounds`` times (the first 5 uncounted). Prints p50/p95 per
way and the ratio, and writes ``var/reports/bench_garment_knn.json``.

    scripts/elasticsearch.sh start
    .venv/bin/python -m bench.garment_knn
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.common import latency_summary, write_report
from bench.index_bench import clustered, load, open_backend
from eyepic.schema import Filters, Hit, Item
from eyepic.settings import Settings
from indexer.base import Index, KnnQuery

GROUPS = ("top", "bottom", "outer", "shoes")


def search_each(index: Index, queries: list[KnnQuery]) -> list[list[Hit]]:
    return [index.search(q.vector, q.k, q.filters) for q in queries]


def search_together(index: Index, queries: list[KnnQuery]) -> list[list[Hit]]:
    return index.search_many(queries)


WAYS = (("each", search_each), ("many", search_together))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=4000, help="catalog size (the demo's is about 3,900)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--garments", type=int, default=4)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["embedded", "elasticsearch"])
    parser.add_argument("--out", type=Path, default=Path("var/reports/bench_garment_knn.json"))
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    vectors = clustered(args.items + args.rounds * args.garments, args.dim, seed=1)
    base, probes = vectors[: args.items], vectors[args.items:]
    items = [Item(id=f"g{i}", embedding=v, group=GROUPS[i % len(GROUPS)], type="t-shirt", color="black",
                  product_id=f"p{i // 2}", title=f"bench item {i}") for i, v in enumerate(base)]
    report: dict = {"params": vars(args) | {"out": str(args.out)}, "cpus": os.cpu_count(), "results": []}
    with tempfile.TemporaryDirectory(prefix="eyepic-garment-knn-") as tmp:
        for backend in args.backends:
            index = open_backend(backend, args.items, Path(tmp), settings)
            try:
                load(index, items, 1000)
                one_by_one: list[float] = []
                together: list[float] = []
                for r in range(args.rounds):
                    queries = [KnnQuery(probes[r * args.garments + g], args.k,
                                        Filters(group=(GROUPS[g % len(GROUPS)],)))
                               for g in range(args.garments)]
                    # alternate which way goes first, so neither always finds the caches warm
                    timed = {}
                    for name, call in WAYS if r % 2 == 0 else WAYS[::-1]:
                        start = time.perf_counter()
                        timed[name] = (call(index, queries), (time.perf_counter() - start) * 1000)
                    (each, each_ms), (many, many_ms) = timed["each"], timed["many"]
                    if [[h.item.id for h in hits] for hits in each] != [[h.item.id for h in hits] for hits in many]:
                        raise SystemExit(f"{backend}: search_many answered differently from search")
                    if r >= 5:  # warm-up rounds are not counted
                        one_by_one.append(each_ms)
                        together.append(many_ms)
                row = {"backend": backend, "items": args.items, "garments": args.garments,
                       "search_each": latency_summary(one_by_one), "search_many": latency_summary(together),
                       "load_average": os.getloadavg()}
                row["p50_ratio_many_over_each"] = round(row["search_many"]["p50_ms"] / row["search_each"]["p50_ms"], 2)
                report["results"].append(row)
                print(f"{backend:>13}: {args.garments} garments, one by one p50 {row['search_each']['p50_ms']} ms "
                      f"(p95 {row['search_each']['p95_ms']}), search_many p50 {row['search_many']['p50_ms']} ms "
                      f"(p95 {row['search_many']['p95_ms']}): x{row['p50_ratio_many_over_each']}", flush=True)
            finally:
                if backend == "elasticsearch":
                    index.drop_all()
                index.close()
    print(f"wrote {write_report(report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
