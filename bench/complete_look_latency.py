"""Latency of complete-the-look at the demo catalog's size, on the embedded backend.

Builds an embedded index of ``--items`` catalog items (default 3,900, the
demo catalog's size: the train photos of clothing-small and -extra) with the
demo's mix of groups and clustered 128-d vectors like the classifier's
embeddings, or uses an existing index (``--index var/index/items.sqlite``),
then times ``GET /api/v1/items/<id>/complete-the-look`` through the Flask
app in-process (validation, 3 filtered index searches of
``EYEPIC_OUTFIT_CANDIDATES`` products, re-scoring, MMR, reasons, JSON) for
``--requests`` random anchors after a warm-up, and the use case alone
(``OutfitService.complete``). The compatibility model is the released one
(``models/outfits/outfits.npz``) unless ``--model`` names another.
Prints p50/p95 and writes ``var/reports/bench_complete_look.json``.

    .venv/bin/python -m bench.complete_look_latency            # ~1 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import latency_summary, write_report
from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.schema import Item
from eyepic.settings import Settings
from indexer.base import normalise
from indexer.embedded import EmbeddedIndex
from outfits.model import CompatibilityModel

# Share of each group in the demo catalog (train photos of clothing-small and clothing-extra).
DEMO_MIX = {"top": 0.52, "bottom": 0.2, "outer": 0.1, "onepiece": 0.07, "shoes": 0.07, "hat": 0.04}
TARGET_P95_MS = 60.0


def demo_like_items(n: int, dim: int, seed: int = 3) -> list[Item]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 20), dim)).astype(np.float32)
    groups = rng.choice(list(DEMO_MIX), size=n, p=list(DEMO_MIX.values()))
    vectors = normalise(centres[rng.integers(0, len(centres), n)] + 0.9 * rng.standard_normal((n, dim), np.float32))
    items = []
    for i, (group, vector) in enumerate(zip(groups, vectors)):
        types = taxonomy.types_in_group(str(group))
        items.append(Item(id=f"demo-{i:05d}", embedding=vector, group=str(group), type=types[i % len(types)],
                          color=COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))], title=f"{group} {i}",
                          product_id=f"p{i // 2}"))  # two photos per product, as shops often have
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3900)
    parser.add_argument("--index", type=Path, help="an existing embedded index file instead of a synthetic one")
    parser.add_argument("--model", type=Path, help="compatibility model (default: the served one)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from services.outfits import OutfitService
    from serving.analyzer import Analyzer
    from web import create_app

    base = Settings.from_env()
    model = CompatibilityModel.load(args.model or base.outfits_model_path)
    with tempfile.TemporaryDirectory(prefix="bench-look-") as tmp:
        if args.index:
            index = EmbeddedIndex(args.index)
        else:
            index = EmbeddedIndex(Path(tmp) / "items.sqlite")
            index.upsert(demo_like_items(args.items, model.embedding_dim))
        settings = Settings.from_env(var_dir=Path(tmp))
        analyzer = Analyzer.from_settings(settings)  # not called: item requests need no model
        app = create_app(settings, analyzer=analyzer, index=index, compatibility=model)
        client = app.test_client()
        ids = sorted(index.ids())
        rng = np.random.default_rng(0)
        anchors = [ids[i] for i in rng.integers(0, len(ids), args.warmup + args.requests)]
        http_ms, service_ms, groups = [], [], []
        service = OutfitService(settings, analyzer, index, model)
        for n, item_id in enumerate(anchors):
            started = time.perf_counter()
            resp = client.get(f"/api/v1/items/{item_id}/complete-the-look", query_string={"k": args.k})
            elapsed = (time.perf_counter() - started) * 1000
            if resp.status_code != 200:
                print(f"{item_id}: HTTP {resp.status_code} {resp.get_data(as_text=True)[:200]}", file=sys.stderr)
                return 1
            started = time.perf_counter()
            service.complete(service.query(item_id=item_id, k=args.k))
            service_elapsed = (time.perf_counter() - started) * 1000
            if n >= args.warmup:
                http_ms.append(elapsed)
                service_ms.append(service_elapsed)
                groups.append(len(resp.get_json()["groups"]))
        items = index.count()
        index.close()
    http = latency_summary(http_ms)
    report = {
        "bench": "complete_look_latency", "backend": "embedded", "items": items,
        "synthetic_catalog": args.index is None, "k": args.k,
        "candidates_per_group": settings.outfit_candidates, "groups_per_answer": round(float(np.mean(groups)), 2),
        "http_item": http, "service_item": latency_summary(service_ms),
        "target_p95_ms": TARGET_P95_MS, "meets_target": http["p95_ms"] <= TARGET_P95_MS,
        "model": str(args.model or base.outfits_model_path), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    out = write_report(report, args.out or base.reports_dir / "bench_complete_look.json")
    print(f"{items} items, k={args.k}, {settings.outfit_candidates} candidates per group: "
          f"GET complete-the-look p50 {http['p50_ms']} ms, p95 {http['p95_ms']} ms (target <= {TARGET_P95_MS}); "
          f"use case alone p50 {report['service_item']['p50_ms']} ms, p95 {report['service_item']['p95_ms']} ms")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
