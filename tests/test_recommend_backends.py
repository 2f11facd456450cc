"""The embedded and Elasticsearch backends give the same recommendations (>= 90 % of the top 12).

Both indices hold the same structured catalog; the same shoppers (two styles
and a dislike; one style under filters; only dislikes; nobody) ask both.
Runs against the real node at ``EYEPIC_ES_URL`` (skipped without one, a
failure under ``EYEPIC_REQUIRE_ES=1``), like the index conformance suite.
"""

from __future__ import annotations

import pytest
from taste_catalog import synthetic_catalog

from indexer.factory import open_index
from services.recommend import RecommendService
from taste.events import Event, MemoryEventStore

from test_index_conformance import _settings, es_url  # noqa: F401 (the fixture)

SHOPPERS = {
    "two-styles": [("like", "jeans-black-0-a"), ("like", "jeans-black-1-b"), ("click", "t-shirt-white-2-a"),
                   ("save", "t-shirt-white-3-a"), ("dislike", "jeans-black-4-a")],
    "one-style": [("like", "coat-red-0-a"), ("purchase", "coat-red-1-a"), ("view", "dress-blue-2-a")],
    "only-dislikes": [("dislike", "skirt-white-0-a")],
}
REQUESTS = [("two-styles", {}), ("two-styles", {"type": ["t-shirt"]}), ("one-style", {}),
            ("one-style", {"color": ["red", "blue"]}), ("only-dislikes", {}), ("nobody", {}),
            ("nobody", {"group": ["bottom"]})]


@pytest.mark.elasticsearch
def test_both_backends_agree_on_the_top_12(es_url, tmp_path):  # noqa: F811 (the fixture)
    items = synthetic_catalog(per_combo=8)
    embedded = open_index(_settings("embedded", tmp_path / "e"))
    elastic = open_index(_settings("elasticsearch", tmp_path / "s"))
    try:
        embedded.upsert(items)
        elastic.upsert(items)
        services = []
        for index in (embedded, elastic):
            store = MemoryEventStore()
            for user, events in SHOPPERS.items():
                for n, (kind, item_id) in enumerate(events):
                    store.add(Event(user, kind, item_id, 1_000.0 + n, f"{user}-{n}"))
            services.append(RecommendService(_settings("embedded", tmp_path / "x"), index, store))
        for user, filters in REQUESTS:
            answers = []
            for service in services:
                result = service.recommend(service.recommend_query(user_id=user, k=12, filters=filters))
                answers.append(result)
            a, b = ([r.item.id for r in result.items] for result in answers)
            assert len(a) == len(b) == 12, (user, filters)
            assert len(set(a) & set(b)) >= 11, (user, filters, a, b)  # >= 90 % of 12
            assert answers[0].personal == answers[1].personal
    finally:
        embedded.close()
        elastic.drop_all()
        elastic.close()
