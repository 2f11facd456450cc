"""Per-image classify+embed time of the exported classifier, as the Analyzer calls it.

Real garment crops (CCP validation boxes, PNG-encoded like the Analyzer's)
and product photos go through ``InProcessModelClient.predict`` at batch 1 and
batch 32, warm. Prints numbers and writes JSON (``--out``, default
``var/reports/bench_embed.json``).

    .venv/bin/python -m bench.embed_bench
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.common import latency_summary, write_report
from eyepic.settings import Settings
from serving.model_client import InProcessModelClient
from training.data.sources import load_samples
from training.predictions import encode_sample


def timed(call, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = Settings.from_env()
    client = InProcessModelClient(settings.model_dir)
    meta = client.metadata(settings.classifier_name)
    val = [s for s in load_samples(settings.data_dir, settings.cache_dir) if s.split == "validation"]
    picked = val[:: max(1, len(val) // args.images)][: args.images]
    crops = [encode_sample(s) for s in picked]
    name = settings.classifier_name
    client.predict(name, crops[:32])  # warm-up: graph tracing, thread pools
    single = [t for c in crops for t in timed(lambda c=c: client.predict(name, [c]), 1)]
    batch = timed(lambda: client.predict(name, crops[:32]), 5)
    one = latency_summary(single)
    report = {
        "model": meta.model_version,
        "input_size": meta.input_size,
        "images": len(crops),
        "batch1_ms_per_image_p50": one["p50_ms"],
        "batch1_ms_per_image_p95": one["p95_ms"],
        "batch32_ms_per_image": round(latency_summary(batch)["p50_ms"] / 32, 2),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    write_report(report, args.out or settings.reports_dir / "bench_embed.json")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
