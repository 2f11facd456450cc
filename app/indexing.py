"""The indexing job: catalog entries -> Analyzer -> Index, in batches (``eyepic index``).

In the application layer because it joins two stages (serving's Analyzer,
the indexer's Index) that do not know each other.

Resumable: ids already in the index are skipped, so re-running after a crash
or on a grown catalog only does the new work. A crawled catalog also says
what changed: entries marked vanished are deleted, and crawled entries whose
fields differ from the indexed item are indexed again. Each batch is upserted (and so
made durable) before the next starts. An image that can't be read is
reported and skipped; it does not stop the job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tqdm import tqdm

from eyepic import taxonomy
from eyepic.imaging import ImageError
from eyepic.schema import Garment, Item
from indexer.base import Index
from indexer.catalog import CatalogEntry
from serving.analyzer import Analysis, Analyzer


@dataclasses.dataclass
class IndexReport:
    total: int = 0
    skipped_existing: int = 0
    indexed: int = 0
    removed: int = 0  # vanished entries deleted from the index
    failed: list[str] = dataclasses.field(default_factory=list)


def main_garment(garments: Sequence[Garment]) -> Garment:
    """The garment a product photo is about: the most confident, larger one."""
    def weight(g: Garment) -> float:
        x0, y0, x1, y1 = g.box
        return g.scores.get("detection", 1.0) * ((x1 - x0) * (y1 - y0)) ** 0.5
    return max(garments, key=weight)


def index_catalog(
    entries: Sequence[CatalogEntry],
    analyzer: Analyzer,
    index: Index,
    batch_size: int = 32,
    progress: bool = True,
) -> IndexReport:
    report = IndexReport(total=len(entries))
    existing = index.ids()
    gone = [e.id for e in entries if e.vanished and e.id in existing]
    report.removed = index.delete(gone) if gone else 0
    live = [e for e in entries if not e.vanished]
    todo = [e for e in live if e.id not in existing or (e.crawled_at and _changed(e, index.get(e.id)))]
    report.skipped_existing = len(live) - len(todo)
    model_version = analyzer.model_version
    # closed on failure too: an error line must not land on the progress bar's line
    with tqdm(total=len(todo), desc="indexing", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            _index_batch(todo[start : start + batch_size], analyzer, index, model_version, report)
            bar.update(min(batch_size, len(todo) - start))
    return report


def _index_batch(batch: Sequence[CatalogEntry], analyzer: Analyzer, index: Index, model_version: str,
                 report: IndexReport) -> None:
    """Analyze one batch and upsert it: durable before the next batch starts."""
    readable, datas = [], []
    for entry in batch:
        try:
            data = entry.image_path.read_bytes()
        except OSError as exc:
            report.failed.append(f"{entry.id}: {exc}")
            continue
        readable.append(entry)
        datas.append(data)
    items = []
    analyses = _analyze_each(analyzer, readable, datas, report)
    for entry, analysis in analyses:
        garment = main_garment(analysis.garments)
        type_name = entry.type or garment.type  # the shop's category beats the model's guess
        items.append(Item(
            id=entry.id, embedding=garment.embedding, group=taxonomy.group_of(type_name), type=type_name,
            color=garment.color, title=entry.title, image_path=str(entry.image_path),
            product_id=entry.product_id, url=entry.url, price=entry.price, shop=entry.shop,
            brand=entry.brand, model_version=model_version,
        ))
    index.upsert(items)
    report.indexed += len(items)


def _changed(entry: CatalogEntry, item: Item | None) -> bool:
    """Whether a crawled entry says something else than its indexed item (a new price, photo, title...)."""
    if item is None:
        return True
    return (item.title, item.price, item.url, item.brand, item.shop, item.product_id, item.image_path) != (
        entry.title, entry.price, entry.url, entry.brand, entry.shop, entry.product_id, str(entry.image_path))


def _analyze_each(analyzer: Analyzer, entries: Sequence[CatalogEntry], datas: Sequence[bytes],
                  report: IndexReport) -> list[tuple[CatalogEntry, Analysis]]:
    """One batched call; if an image in the batch is bad, fall back to one by one."""
    try:
        return list(zip(entries, analyzer.analyze_batch(datas)))
    except ImageError:
        pass
    done = []
    for entry, data in zip(entries, datas):
        try:
            done.append((entry, analyzer.analyze(data)))
        except ImageError as exc:
            report.failed.append(f"{entry.id}: {exc}")
    return done
