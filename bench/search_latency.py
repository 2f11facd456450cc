"""Warm latency of POST /api/v1/search over real HTTP, on the configured models and index.

Serves ``web.create_app(Settings.from_env())`` on a free loopback port in a
thread, sends a few warm-up requests, then N real photos one at a time
(street photos from CCP and product photos from clothing-small, alternating),
and reports p50/p95/mean, plus the server-side ``took_ms``. Writes JSON to
``var/reports/bench_search_latency.json`` (or --out).

    .venv/bin/python -m bench.search_latency --requests 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import requests

from bench.common import latency_summary, write_report
from devtools.wsgi import serve_in_thread
from eyepic.settings import Settings
from web import create_app


def photos(settings: Settings, n: int) -> list[Path]:
    street = sorted((settings.data_dir / "ccp" / "photos").glob("*.jpg"))
    product = sorted((settings.data_dir / "clothing-small" / "validation").rglob("*.jpg"))
    mixed = [p for pair in zip(street[::7], product[::7]) for p in pair]
    return mixed[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = Settings.from_env()
    app = create_app(settings)
    base, stop = serve_in_thread(app, "search-latency")
    url = f"{base}/api/v1/search"
    files = photos(settings, args.warmup + args.requests)
    session = requests.Session()
    latencies, server_ms = [], []
    try:
        for i, path in enumerate(files):
            started = time.perf_counter()
            response = session.post(url, files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                                    timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if i >= args.warmup:
                latencies.append(elapsed)
                server_ms.append(response.json()["took_ms"])
    finally:
        stop()
    summary = latency_summary(latencies, digits=1)
    report = {
        "requests": len(latencies),
        "index_items": app.extensions["eyepic"].index.count(),
        "p50_ms": summary["p50_ms"],
        "p95_ms": summary["p95_ms"],
        "mean_ms": summary["mean_ms"],
        "server_p50_ms": latency_summary(server_ms, digits=1)["p50_ms"],
        "model_version": app.extensions["eyepic"].analyzer.model_version,
        "index": settings.index,
    }
    write_report(report, args.out or settings.reports_dir / "bench_search_latency.json")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
