"""Detector latency benchmark: the exported detector, warm, one photo per call.

Feeds real CCP validation photos the way the Analyzer does (validated,
EXIF-rotated, capped; the upload's own bytes where the graph decodes the
same picture from them, else a PNG: ``eyepic.imaging.model_bytes``) to the latest
``models/detector/<version>`` export's ``serving_default`` through the
in-process ModelClient, after a warm-up, and reports p50/p95/mean in ms.
The whole call is timed: in-graph decode + letterbox, model, box decoding,
per-class NMS, mapping boxes back. Target: p50 <= 40 ms on the 2-core machine.
Also times every photo re-encoded as PNG, as the Analyzer did before
``model_bytes``, for comparison.
Prints a table and writes var/reports/detector_bench.json (``--out``).

    .venv/bin/python -m bench.detector_bench
    .venv/bin/python -m bench.detector_bench --photos 50 --model-dir var/models
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import latency_summary, write_report
from eyepic.imaging import encode_png, load_image, model_bytes
from eyepic.settings import Settings


def percentiles(ms: list[float]) -> dict[str, float]:
    return latency_summary(ms)


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(settings.model_dir))
    parser.add_argument("--name", default=settings.detector_name)
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default=str(settings.reports_dir / "detector_bench.json"))
    args = parser.parse_args(argv)

    from serving.model_client import InProcessModelClient, latest_version_dir
    from training.data.ccp import ccp_split

    photos_dir = settings.data_dir / "ccp" / "photos"
    paths = [p for p in sorted(photos_dir.glob("*.jpg")) if ccp_split(p.stem) == "validation"][: args.photos]
    if not paths:
        print(f"no CCP photos under {photos_dir}", file=sys.stderr)
        return 2
    client = InProcessModelClient(Path(args.model_dir))
    version_dir = latest_version_dir(Path(args.model_dir), args.name)
    meta = client.metadata(args.name)
    uploads = [p.read_bytes() for p in paths]
    inputs = {"analyzer": [model_bytes(data, load_image(data)) for data in uploads],
              "png_reencoded": [encode_png(load_image(data)) for data in uploads]}
    passed_through = sum(sent is data for sent, data in zip(inputs["analyzer"], uploads))
    results: dict[str, dict] = {}
    found = []
    for label, images in inputs.items():
        for data in images[: args.warmup]:
            client.predict(args.name, [data])
        ms = []
        for data in images:
            start = time.perf_counter()
            out = client.predict(args.name, [data])
            ms.append((time.perf_counter() - start) * 1000)
            if label == "analyzer":
                found.append(int((out["scores"][0][: int(out["num_detections"][0])] >= 0.25).sum()))
        results[label] = percentiles(ms)
    report = {
        "model": f"{args.name}/{version_dir.name}",
        "input_size": meta.input_size,
        "classes": meta.classes.get("group", []),
        "photos": len(paths),
        "batch": 1,
        "latency": results,
        "uploads_sent_as_is": passed_through,
        "mean_garments_found": round(float(np.mean(found)), 2),
        "target_p50_ms": 40,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                    "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"detector {report['model']} ({meta.input_size} px), {len(paths)} photos, batch 1, warm; "
          f"load avg {report['machine']['load_avg_1m']}")
    for label, r in results.items():
        print(f"  {label:13s} p50 {r['p50_ms']:7.2f} ms   p95 {r['p95_ms']:7.2f} ms   mean {r['mean_ms']:7.2f} ms")
    print(f"  uploads sent as they came (no PNG re-encode): {passed_through} of {len(paths)}")
    print(f"  garments found per photo (score >= 0.25): {report['mean_garments_found']}")
    print(f"report: {write_report(report, Path(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
