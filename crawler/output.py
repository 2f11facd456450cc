"""What a crawl leaves in DIR: ``catalog.jsonl`` for ``eyepic index``, ``classes/<type>/`` for
training, and ``crawl-report.json``.

Written from the state after each run, atomically, so they always describe
one finished run. Vanished products stay in the manifest with
``"status": "vanished"`` so the indexer deletes them from the index.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from crawler.items import category_type
from crawler.state import CrawlState


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def catalog_rows(state: CrawlState, shop: str) -> list[dict[str, Any]]:
    rows = []
    for product in state.products(("active", "vanished")):
        info = json.loads(product["details"])
        row = {
            "id": product["id"], "image": product["image"], "title": info.get("title", ""),
            "price": info.get("price"), "currency": info.get("currency", ""), "brand": info.get("brand", ""),
            "shop": shop, "product_id": info.get("product_id") or product["id"], "url": product["url"],
            "crawled_at": product["crawled_at"], "status": product["status"],
        }
        if type_name := category_type(info.get("category", "")):
            row["type"] = type_name
        if info.get("category"):
            row["category"] = info["category"]
        rows.append(row)
    return rows


def write_catalog(out: Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(out) / "catalog.jsonl"
    _write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def write_classes(out: Path, rows: list[dict[str, Any]]) -> dict[str, int]:
    """``out/classes/<category>/<id>.<ext>`` (hard links to the catalog's images) for active products
    whose category names a taxonomy type: the folder-per-class tree the training readers take."""
    root = Path(out) / "classes"
    tmp = root.with_name("classes.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts: dict[str, int] = {}
    for row in rows:
        category = str(row.get("category", "")).strip().lower()
        if row["status"] != "active" or not category_type(category):
            continue
        source = Path(out) / row["image"]
        target = tmp / category / f"{row['id']}{source.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        counts[category] = counts.get(category, 0) + 1
    shutil.rmtree(root, ignore_errors=True)
    if counts:
        tmp.replace(root)
    return counts


def write_report(out: Path, report: dict[str, Any]) -> Path:
    path = Path(out) / "crawl-report.json"
    _write_atomic(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return path
