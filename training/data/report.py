"""``eyepic data report``: counts per source, split, group, type and color, plus a PNG."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from training.data.samples import Sample


def summarize(samples: Sequence[Sample]) -> dict:
    out: dict = {"total": len(samples)}
    for field in ("source", "split", "group", "type", "color"):
        out[field] = dict(Counter(getattr(s, field) or "(none)" for s in samples).most_common())
    return out


def format_summary(summary: dict) -> str:
    lines = [f"{summary['total']} garment samples"]
    for field in ("source", "split", "group", "type", "color"):
        lines.append(f"{field}: " + ", ".join(f"{k} {v}" for k, v in summary[field].items()))
    return "\n".join(lines)


def plot_distributions(samples: Sequence[Sample], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eyepic.colors import PALETTE

    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    for ax, field in zip(axes[:2], ("group", "type")):
        sources = sorted({s.source for s in samples})
        width = 0.8 / max(1, len(sources))
        for k, source in enumerate(sources):
            offset = (k - (len(sources) - 1) / 2) * width
            counts = Counter(getattr(s, field) for s in samples if s.source == source)
            names = sorted({getattr(s, field) for s in samples})
            ax.bar([i + offset for i in range(len(names))], [counts.get(n, 0) for n in names],
                   width=width, label=source)
            ax.set_xticks(range(len(names)), names, rotation=75)
        ax.set_title(f"{field} per source")
        ax.legend()
    counts = Counter(s.color for s in samples if s.color)
    ax = axes[2]
    ax.bar([c.name for c in PALETTE], [counts.get(c.name, 0) for c in PALETTE],
           color=[c.hex for c in PALETTE], edgecolor="black")
    ax.set_title("color (CCP masks)")
    ax.tick_params(axis="x", rotation=75)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
