"""How often the embedded and Elasticsearch backends give the same top 12, on the real catalog.

The demo index's items (the released classifier's embeddings) are copied
into a fresh Elasticsearch index (deleted after); simulated shoppers (as in
``eyepic evaluate recommender``: 0-20 clicks, likes, saves and dislikes)
ask both backends for 12 recommendations, unfiltered and with a color
filter. Reports the mean overlap, the minimum and the share of requests
agreeing on at least 90 % of the top 12 (the issue's target). Writes
``var/reports/bench_recommend_agreement.json``.

    .venv/bin/python -m bench.recommend_agreement --shoppers 40
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

from app.recommender_sim import candidate_modes, make_shopper
from bench.common import write_report
from eyepic.settings import Settings
from indexer.factory import open_index
from services.recommend import RecommendService
from taste.events import Event, MemoryEventStore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = Settings.from_env(index="embedded")
    embedded = open_index(settings)
    items = [it for it in (embedded.get(i) for i in sorted(embedded.ids())) if it is not None]
    if not items:
        raise SystemExit("the demo index is empty: run `eyepic demo` (or `eyepic evaluate recommender`) first")
    es_settings = Settings.from_env(index="elasticsearch", index_name=f"eyepic-agreement-{os.getpid()}")
    elastic = open_index(es_settings)
    rng = random.Random(args.seed)  # nosec B311: reproducible simulated shoppers
    store = MemoryEventStore()
    people = [make_shopper(f"a{n}", candidate_modes(items, 40), rng) for n in range(args.shoppers)]
    for p in people:
        liked = [i for i in items if p.relevant(i)]
        disliked = [i for i in items if p.dislikes(i)]
        for n in range(rng.randint(0, 20)):
            if rng.random() < 0.2:
                kind, item = "dislike", rng.choice(disliked)
            else:
                kind, item = rng.choice(["click", "like", "save"]), rng.choice(liked)
            store.add(Event(p.user_id, kind, item.id, 1.7e9 + n, f"{p.user_id}-{n}"))
    overlaps = []
    try:
        elastic.upsert(items)
        services = [RecommendService(settings, embedded, store), RecommendService(es_settings, elastic, store)]
        for p in people:
            for filters in ({}, {"color": ["black"]}):
                a, b = ([r.item.id for r in s.recommend(s.recommend_query(user_id=p.user_id, k=12,
                                                                           filters=filters)).items]
                        for s in services)
                overlaps.append(len(set(a) & set(b)) / max(len(a), 1))
        version = elastic.server_version()
    finally:
        elastic.drop_all()
        elastic.close()
        embedded.close()
    report = {"items": len(items), "requests": len(overlaps), "server_version": version,
              "mean_overlap_top12": round(float(np.mean(overlaps)), 4), "min_overlap_top12": round(min(overlaps), 4),
              "share_at_least_90pct": round(float(np.mean(np.array(overlaps) >= 0.9)), 4)}
    out = write_report(report, args.out or settings.reports_dir / "bench_recommend_agreement.json")
    print(json.dumps(report, indent=2))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
