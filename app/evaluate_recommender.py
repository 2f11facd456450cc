"""``eyepic evaluate recommender``: simulated shoppers over the real catalog (``app.recommender_sim``).

The catalog is the demo's (the train photos of clothing-small and
clothing-extra, embedded by the installed classifier): the configured index
is used as it is when it holds items, else the demo catalog is indexed into
it first, as ``eyepic demo`` does, so the embeddings are computed once and
kept under ``var/``. Reported seeds and tuning seeds never overlap
(``REPORT_SEEDS``, ``TUNE_SEEDS``); ``--tune`` searches the taste settings on
the tuning seeds only and prints the best, which are the settings' defaults.

Writes ``var/reports/recommender/evaluation.{json,md,png}``; ``--json``
prints the JSON on stdout's last line, with ``lift_at_10``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

from app.errors import UsageError
from app.recommender_sim import CHECKPOINTS, SYSTEMS, Behaviour, NoModes, simulate
from eyepic.schema import Item
from eyepic.settings import Settings
from indexer.base import Index

REPORT_SEEDS = (0, 1, 2)
TUNE_SEEDS = (100, 101, 102)
SHOPPERS = 40
TUNE_GRID = {
    "taste_cluster_similarity": (0.6, 0.7, 0.8),
    "taste_mmr_lambda": (0.65, 0.75, 0.85),
    "taste_affinity_weight": (0.3, 0.6, 1.0),
}


def catalog_items(settings: Settings, index: Index) -> list[Item]:
    """Every indexed item (vectors included), indexing the demo catalog first when the index is empty."""
    if not index.count():
        from app.demo import demo_catalog
        from app.indexing import index_catalog
        from indexer.catalog import read_catalog
        from serving.analyzer import Analyzer

        print("the index is empty: indexing the demo catalog first (once; kept under var/)", file=sys.stderr)
        index_catalog(read_catalog(demo_catalog(settings)), Analyzer.from_settings(settings), index,
                      batch_size=settings.batch_size)
    items = [item for item in (index.get(i) for i in sorted(index.ids())) if item is not None]
    if not items:
        raise UsageError("the catalog index holds no items; run `eyepic index PATH` or `eyepic demo` first")
    return items


def evaluate(settings: Settings, index: Index, items: list[Item], seeds: tuple[int, ...], shoppers: int,
             quiet: bool = False) -> dict:
    started = time.perf_counter()
    result = simulate(items, index, settings, seeds, shoppers,
                      progress=None if quiet else (lambda line: print(line, file=sys.stderr, flush=True)))
    result["settings"] = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
                          if f.name.startswith("taste_")}
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def tune(settings: Settings, index: Index, items: list[Item], shoppers: int) -> dict:
    """The grid on TUNE_SEEDS: taste p@12 after 10 for each combination, best first."""
    rows = []
    names = list(TUNE_GRID)
    for values in itertools.product(*TUNE_GRID.values()):
        candidate = dataclasses.replace(settings, **dict(zip(names, values)))
        run = simulate(items, index, candidate, TUNE_SEEDS, shoppers, Behaviour(), systems=("taste",))
        taste = run["systems"]["taste"]  # type: ignore[index]
        rows.append({**dict(zip(names, values)), "p_at_12_after_10": taste["precision_at_12"]["10"],
                     "modes_hit": taste["modes_hit_top24_after_20"]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (-r["p_at_12_after_10"], -r["modes_hit"]))
    return {"seeds": list(TUNE_SEEDS), "grid": rows}


def markdown(result: dict) -> str:
    lines = ["# Recommender evaluation (simulated shoppers)", "",
             f"Catalog: {result['catalog_items']} items; {result['modes_available']} taste modes available; "
             f"seeds {result['seeds']} x {result['shoppers_per_seed']} shoppers.", "",
             "| system | " + " | ".join(f"p@12 after {c}" for c in CHECKPOINTS)
             + " | modes hit top24 @20 | disliked shown | near-dup of disliked | coverage | ILD | dup/list |",
             "|---" * (len(CHECKPOINTS) + 7) + "|"]
    for name, s in result["systems"].items():
        p = s["precision_at_12"]
        lines.append(f"| {name} | " + " | ".join(f"{p[str(c)]:.3f}" for c in CHECKPOINTS)
                     + f" | {s['modes_hit_top24_after_20']:.1%} | {s['disliked_shown']} | "
                       f"{s['near_disliked_share']:.2%} | {s['coverage']:.1%} | {s['intra_list_diversity']:.3f} | "
                       f"{s['duplicates_per_list']:.3f} |")
    lines += ["", f"lift at 10 (taste / baseline): {result.get('lift_at_10')}; "
                  f"over Rocchio: {result.get('lift_over_rocchio_at_10')}", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in result["systems"].items():
        ax.plot(CHECKPOINTS, [s["precision_at_12"][str(c)] for c in CHECKPOINTS], marker="o", label=name)
    ax.set_xlabel("interactions")
    ax.set_ylabel("precision@12")
    ax.set_title("Simulated shoppers: precision@12 by interactions")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report_seeds(raw: str | None) -> tuple[int, ...]:
    """``--seeds``: fresh seeds confirm a result on shoppers no one looked at; tuning seeds are refused."""
    if not raw:
        return REPORT_SEEDS
    try:
        seeds = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--seeds must be integers separated by commas, not {raw!r}") from None
    if not seeds or set(seeds) & set(TUNE_SEEDS):
        raise UsageError(f"--seeds needs at least one seed and none of the tuning seeds {list(TUNE_SEEDS)}")
    return seeds


def evaluate_recommender_command(settings: Settings, args: argparse.Namespace) -> int:
    from indexer.factory import open_index

    shoppers = getattr(args, "shoppers", None) or SHOPPERS
    if shoppers < 1:
        raise UsageError(f"--shoppers must be at least 1, not {shoppers}")
    seeds = report_seeds(getattr(args, "seeds", None))
    out_dir = settings.reports_dir / "recommender"
    out_dir.mkdir(parents=True, exist_ok=True)
    index = open_index(settings)
    try:
        items = catalog_items(settings, index)
        if getattr(args, "tune", False):
            grid = tune(settings, index, items, shoppers)
            (out_dir / "tuning.json").write_text(json.dumps(grid, indent=2))
            print(json.dumps(grid["grid"][0]))
            return 0
        result = evaluate(settings, index, items, seeds, shoppers, quiet=args.json)
    except NoModes as exc:
        raise UsageError(str(exc)) from None
    finally:
        index.close()
    result["systems_order"] = list(SYSTEMS)
    (out_dir / "evaluation.json").write_text(json.dumps(result, indent=2))
    (out_dir / "evaluation.md").write_text(markdown(result))
    plot(result, out_dir / "evaluation.png")
    if args.json:
        print(json.dumps(result))
    else:
        print(markdown(result))
        print(f"report: {out_dir}")
    return 0
