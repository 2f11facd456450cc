"""The embedded index's own guarantees (durability, exactness, reload).

Semantics shared with Elasticsearch live in test_index_conformance.py.
"""

import numpy as np
import pytest

from eyepic.schema import Filters, Item
from indexer.base import IndexUnavailable
from indexer.embedded import EmbeddedIndex


def _items(n: int, dim: int = 8, seed: int = 0) -> list[Item]:
    rng = np.random.default_rng(seed)
    groups, colors = ["top", "bottom", "outer"], ["black", "white", "red", "blue"]
    return [
        Item(id=f"i{i}", embedding=rng.normal(size=dim).astype(np.float32), group=groups[i % 3],
             type={"top": "t-shirt", "bottom": "jeans", "outer": "coat"}[groups[i % 3]],
             color=colors[i % 4], title=f"item {i}", shop="a" if i % 2 else "b")
        for i in range(n)
    ]


def _exact(items, query, filters, k):
    q = query / np.linalg.norm(query)
    scored = [(float(it.embedding @ q / np.linalg.norm(it.embedding)), it.id)
              for it in items if filters.matches(it)]
    return [i for _, i in sorted(scored, reverse=True)[:k]]


def test_filtered_search_is_the_exact_filtered_top_k(tmp_path):
    items = _items(2000)
    index = EmbeddedIndex(tmp_path / "i.sqlite")
    index.upsert(items)
    rng = np.random.default_rng(1)
    for filters in (Filters(), Filters(color=("red",)), Filters(group=("top",), color=("red", "blue")),
                    Filters(shop=("a",), type=("coat",))):
        q = rng.normal(size=8)
        hits = index.search(q, 10, filters)
        assert [h.item.id for h in hits] == _exact(items, q, filters, 10)
        assert all(filters.matches(h.item) for h in hits)


def test_a_rare_filter_still_returns_k(tmp_path):
    items = _items(3000)
    items[7].color = "green"  # the only green items: a 0.1 % filter
    items[1500].color = "green"
    items[2999].color = "green"
    index = EmbeddedIndex(tmp_path / "i.sqlite")
    index.upsert(items)
    hits = index.search(np.ones(8), 3, Filters(color=("green",)))
    assert sorted(h.item.id for h in hits) == ["i1500", "i2999", "i7"]


def test_acknowledged_writes_survive_reopening(tmp_path):
    path = tmp_path / "i.sqlite"
    index = EmbeddedIndex(path)
    index.upsert(_items(50))
    index.delete(["i3"])
    del index  # no close(): as after a crash
    reopened = EmbeddedIndex(path)
    assert reopened.count() == 49 and reopened.get("i3") is None
    assert reopened.get("i4").title == "item 4"


def test_writes_from_another_connection_are_seen(tmp_path):
    path = tmp_path / "i.sqlite"
    reader, writer = EmbeddedIndex(path), EmbeddedIndex(path)
    writer.upsert(_items(10))
    assert len(reader.search(np.ones(8), 5)) == 5
    writer.upsert(_items(20)[10:])
    assert len(reader.search(np.ones(8), 50)) == 20


def test_dimension_mismatch_is_an_error(tmp_path):
    index = EmbeddedIndex(tmp_path / "i.sqlite")
    index.upsert(_items(3, dim=8))
    with pytest.raises(IndexUnavailable):
        index.upsert(_items(1, dim=4))
    with pytest.raises(IndexUnavailable):
        index.search(np.ones(4), 3)


def test_a_failed_batch_writes_nothing(tmp_path):
    index = EmbeddedIndex(tmp_path / "i.sqlite")
    index.upsert(_items(3))
    bad = _items(5, seed=2)
    bad[4] = Item(id="bad", embedding=np.ones(4, np.float32), group="top", type="t-shirt", color="red")
    with pytest.raises(IndexUnavailable):
        index.upsert(bad)
    assert index.count() == 3
