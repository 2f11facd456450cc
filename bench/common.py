"""What every benchmark shares: one latency summary and one way to write its report."""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def latency_summary(ms: list[float], digits: int = 2) -> dict[str, float]:
    """n, p50, p95, mean and min of latencies in milliseconds (nearest-rank percentiles)."""
    ordered = sorted(ms)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    return {"n": len(ms), "p50_ms": round(rank(50), digits), "p95_ms": round(rank(95), digits),
            "mean_ms": round(statistics.fmean(ms), digits), "min_ms": round(ordered[0], digits)}


def write_report(report: dict, out: Path) -> Path:
    """Write ``report`` as indented JSON to ``out`` (folders made as needed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out
