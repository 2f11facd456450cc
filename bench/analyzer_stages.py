"""Where one search's time goes: the Analyzer's stages timed separately, in process.

``POST /api/v1/search`` through the Flask app (its WSGI test client: no
sockets, no gunicorn, so what is left is our own code), on a fresh embedded
index of ``--catalog`` clothing-small photos, one request after another.
Each stage is timed by wrapping the function that does it:

* ``decode``: ``load_image`` (sniff, verify, decode, EXIF, RGB, downscale) and
  ``model_bytes`` (can the upload go to the models as is?);
* ``detect``: the detector's model call; ``embed``: the classifier's (all
  crops of the photo in one batch);
* ``crop``: ``crop_encoded`` (crop + PNG encode); ``color``: ``color_shares``;
* ``knn``: the index queries;
* ``outside``: the rest of the request (parsing the upload, label read-out,
  duplicate suppression, hit JSON, Flask), i.e. total minus all of the above.

The issue's "work outside models and index" is total minus detect, embed and
knn. Prints per-stage p50 and mean and writes ``var/reports/bench_analyzer_stages.json``.

    .venv/bin/python -m bench.analyzer_stages --requests 100
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import write_report
from eyepic.settings import Settings

MODEL_STAGES = ("detect", "embed", "knn")
STAGES = ("decode", "detect", "crop", "color", "embed", "knn", "outside")


def build_catalog_index(settings: Settings, n: int, work: Path) -> tuple[int, list[bytes]]:
    """An embedded index of ``n`` clothing-small photos under ``work`` and 64 query photos
    (CCP street photos and clothing-small validation shots, alternating)."""
    from app.indexing import index_catalog
    from indexer.catalog import read_catalog
    from indexer.factory import open_index
    from serving.analyzer import Analyzer
    from serving.model_client import InProcessModelClient

    product = sorted((settings.data_dir / "clothing-small" / "train").rglob("*.jpg"))
    catalog = work / "catalog.jsonl"
    step = max(1, len(product) // n)
    catalog.write_text("".join(json.dumps({"id": f"p{i}", "image": str(p.resolve()), "title": p.parent.name}) + "\n"
                               for i, p in enumerate(product[::step][:n])))
    street = sorted((settings.data_dir / "ccp" / "photos").glob("*.jpg"))
    shots = sorted((settings.data_dir / "clothing-small" / "validation").rglob("*.jpg"))
    queries = [p.read_bytes() for pair in zip(street[::7], shots[::7]) for p in pair][:64]
    index = open_index(settings)
    index_catalog(read_catalog(catalog), Analyzer.from_settings(settings, InProcessModelClient(settings.model_dir)),
                  index, progress=False)
    items = index.count()
    index.close()
    return items, queries


class StageClock:
    """Per-request seconds by stage, filled by the wrapped functions."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                name = stage(*args, **kwargs) if callable(stage) else stage
                self.current[name] += time.perf_counter() - started
        return timed

    def take(self) -> dict[str, float]:
        out, self.current = dict(self.current), defaultdict(float)
        return out


@contextlib.contextmanager
def instrumented(app: Any, clock: StageClock):
    """Wrap the stage functions of ``app``'s analyzer and index (restored after)."""
    import serving.analyzer as analyzer_module

    services = app.extensions["eyepic"]
    analyzer, index = services.analyzer, services.index
    saved = {name: getattr(analyzer_module, name) for name in ("load_image", "model_bytes", "crop_encoded",
                                                               "color_shares")}
    for name, stage in (("load_image", "decode"), ("model_bytes", "decode"), ("crop_encoded", "crop"),
                        ("color_shares", "color")):
        setattr(analyzer_module, name, clock.wrap(stage, saved[name]))
    detector = analyzer.detector
    models = analyzer.models
    models.predict = clock.wrap(lambda model, *_a, **_k: "detect" if model == detector else "embed",
                                models.predict)
    index.search = clock.wrap("knn", index.search)
    index.search_many = clock.wrap("knn", index.search_many)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(analyzer_module, name, fn)
        for obj, name in ((models, "predict"), (index, "search"), (index, "search_many")):
            with contextlib.suppress(AttributeError):
                delattr(obj, name)


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for stage in (*STAGES, "outside_models_and_index", "total"):
        ms = sorted(r.get(stage, 0.0) * 1000 for r in rows)
        out[stage] = {"p50_ms": round(statistics.median(ms), 2), "mean_ms": round(statistics.fmean(ms), 2)}
    return out


def run_requests(app: Any, queries: list[bytes], n: int, warmup: int) -> list[dict[str, float]]:
    clock = StageClock()
    client = app.test_client()
    rows = []
    with instrumented(app, clock):
        for i in range(warmup + n):
            data = queries[i % len(queries)]
            clock.take()
            started = time.perf_counter()
            response = client.post("/api/v1/search", data={"image": (_BytesFile(data), "q.jpg", "image/jpeg"),
                                                           "k": "12"}, content_type="multipart/form-data")
            total = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"search answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
            row = clock.take()
            if i < warmup:
                continue
            row["total"] = total
            row["outside"] = total - sum(row.get(s, 0.0) for s in STAGES if s != "outside")
            row["outside_models_and_index"] = total - sum(row.get(s, 0.0) for s in MODEL_STAGES)
            rows.append(row)
    return rows


def _BytesFile(data: bytes):  # noqa: N802 - reads like the type it makes
    import io

    return io.BytesIO(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--catalog", type=int, default=200, help="catalog photos to index first")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from web import create_app

    base = Settings.from_env()
    work = Path(tempfile.mkdtemp(prefix="eyepic-stages-bench-"))
    settings = dataclasses.replace(base, var_dir=work, index="embedded")
    items, queries = build_catalog_index(settings, args.catalog, work)
    app = create_app(settings)
    rows = run_requests(app, queries, args.requests, args.warmup)
    summary = summarise(rows)
    for stage, s in summary.items():
        print(f"{stage:26} p50 {s['p50_ms']:7.2f} ms   mean {s['mean_ms']:7.2f} ms")
    report = {"items": items, "requests": len(rows), "detector": settings.detector_name,
              "load_average": os.getloadavg(), "cpus": os.cpu_count(), "stages": summary,
              "note": "Flask test client in one process; outside = total - every timed stage"}
    out = args.out or base.reports_dir / "bench_analyzer_stages.json"
    print(f"wrote {write_report(report, out)}; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
