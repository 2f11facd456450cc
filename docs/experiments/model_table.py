"""Print one markdown table row per classifier export, from its evaluation reports.

    .venv/bin/python docs/experiments/model_table.py var/models/classifier/8 var/models/classifier/9

Columns: validation group/type/color accuracy (as served), street->product
p@10 same type raw / as served, product->product p@10, the pooled-feature
baseline's street->product p@10 as served, flip / recolor / crop behavioural
rates, and clothing-small type accuracy (in its 10 classes) where
``eyepic evaluate classifier --data .../clothing-small`` was run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(version_dir: Path) -> str:
    ev = json.loads((version_dir / "evaluation" / "validation" / "evaluation.json").read_text())
    heads = [f"{ev['heads'][h]['accuracy']:.3f}" for h in ("group", "type", "color")]
    retrieval = ev["retrieval"]

    def p10(report: dict, part: str) -> str:
        return f"{report[part]['same_type']['p@10']:.3f}" if part in report else ""

    baseline = ev.get("retrieval_baseline", {})
    behavioral = [f"{ev['behavioral'][k]['rate']:.3f}" if ev.get("behavioral", {}).get(k, {}).get("rate") is not None
                  else "" for k in ("flip_keeps_type", "recolor_moves_color", "center_crop_keeps_type")]
    cs_path = version_dir / "evaluation" / "clothing-small" / "evaluation.json"
    cs = ""
    if cs_path.is_file():
        t = json.loads(cs_path.read_text())["heads"]["type"]
        cs = f"{t['accuracy']:.3f} ({t['accuracy_in_label_set']:.3f})"
    cells = [f"`classifier/{version_dir.name}`", *heads, p10(retrieval, "street_to_product"),
             p10(retrieval, "street_to_product_as_served"), p10(retrieval, "product_to_product"),
             p10(baseline, "street_to_product_as_served"), *behavioral, cs]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    print("| model | group | type | color | street->product p@10 | as served | product->product | "
          "baseline as served | flip | recolor | crop | clothing-small type (in its 10) |")
    print("|" + "---|" * 12)
    for arg in sys.argv[1:]:
        print(row(Path(arg)))
