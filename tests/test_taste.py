"""The taste model and the recommend use case over a real EmbeddedIndex of a structured catalog.

Behavioural checks: two liked styles give two clusters with real medoids,
dislikes never come back and push their near-duplicates out, one item per
product, reasons name the liked item, cold start is diverse and says so,
and the profile cache folds new events in and forgets a forgotten shopper.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from taste_catalog import synthetic_catalog

from eyepic.schema import Filters
from eyepic.settings import Settings
from indexer.embedded import EmbeddedIndex
from services.recommend import RecommendService, mmr
from services.requests import InvalidRequest
from taste.events import Event, MemoryEventStore
from taste.profile import ProfileCache, TasteModel, TasteParams

_ids = itertools.count()


def event(user: str, kind: str, item_id: str, at: float = 1_000_000.0) -> Event:
    return Event(user_id=user, kind=kind, item_id=item_id, at=at, event_id=f"e{next(_ids)}")


@pytest.fixture(scope="module")
def catalog():
    return synthetic_catalog()


@pytest.fixture()
def service(catalog, tmp_path) -> Iterator[RecommendService]:
    index = EmbeddedIndex(tmp_path / "index.sqlite")
    index.upsert(catalog)
    settings = Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "models", default_k=12, max_k=50)
    try:
        yield RecommendService(settings, index, MemoryEventStore())
    finally:
        index.close()


def like(service: RecommendService, user: str, *item_ids: str, kind: str = "like", at: float = 1_000_000.0) -> None:
    for item_id in item_ids:
        service.events.add(event(user, kind, item_id, at))


def test_two_styles_make_two_clusters_each_a_real_liked_item(service):
    like(service, "u", "jeans-black-0-a", "jeans-black-1-a", "jeans-black-2-a", "t-shirt-white-0-a",
         "t-shirt-white-1-a")
    profile = service.profile("u")
    assert len(profile.clusters) == 2
    assert {c.medoid.id.rsplit("-", 2)[0] for c in profile.clusters} == {"jeans-black", "t-shirt-white"}
    assert profile.clusters[0].importance > profile.clusters[1].importance  # 3 likes beat 2
    assert abs(sum(c.importance for c in profile.clusters) - 1) < 1e-6
    assert profile.affinities["color"]["black"] > 0 and profile.affinities["type"]["jeans"] > 0


def test_recommendations_follow_both_styles_with_reasons_and_no_repeats(service):
    like(service, "u", "jeans-black-0-a", "jeans-black-1-a", "t-shirt-white-0-a", "t-shirt-white-1-a")
    result = service.recommend(service.recommend_query(user_id="u", k=6, filters={}))
    assert result.personal and result.note == ""
    kinds = [(r.item.type, r.item.color) for r in result.items]
    assert ("jeans", "black") in kinds and ("t-shirt", "white") in kinds
    assert sum(k in {("jeans", "black"), ("t-shirt", "white")} for k in kinds) >= 5, kinds
    products = [r.item.product_id for r in result.items]
    assert len(products) == len(set(products))  # one photo per product
    assert not {"jeans-black-0", "jeans-black-1", "t-shirt-white-0", "t-shirt-white-1"} & set(products)
    assert all(r.reason.startswith("because you liked ") and r.cluster is not None for r in result.items)


def test_filters_sit_inside_retrieval(service):
    like(service, "u", "jeans-black-0-a", "t-shirt-white-0-a")
    result = service.recommend(service.recommend_query(user_id="u", k=6, filters={"type": ["t-shirt"]}))
    assert len(result.items) == 6 and {r.item.type for r in result.items} == {"t-shirt"}


def test_a_disliked_item_never_comes_back_and_its_near_duplicates_sink(service, catalog):
    like(service, "u", "jeans-black-0-a", "jeans-black-1-a")
    before = service.recommend(service.recommend_query(user_id="u", k=12, filters={}))
    target = before.items[0].item
    like(service, "u", target.id, kind="dislike", at=1_000_100.0)
    after = service.recommend(service.recommend_query(user_id="u", k=24, filters={}))
    disliked = target.embedding / np.linalg.norm(target.embedding)
    assert target.product_id not in {r.item.product_id for r in after.items}
    assert all(float(r.item.embedding @ disliked) <= 0.8 for r in after.items)


def test_only_dislikes_is_a_cold_start_without_the_disliked(service):
    like(service, "u", "coat-red-0-a", kind="dislike")
    result = service.recommend(service.recommend_query(user_id="u", k=12, filters={}))
    assert not result.personal and "not personal yet" in result.note
    assert "coat-red-0" not in {r.item.product_id for r in result.items}


def test_cold_start_is_varied_and_marked(service):
    result = service.recommend(service.recommend_query(user_id="nobody", k=12, filters={}))
    assert not result.personal and result.note and len(result.items) == 12
    assert len({r.item.type for r in result.items}) >= 5  # a spread, not one corner of the catalog
    assert all(r.cluster is None for r in result.items)
    products = [r.item.product_id for r in result.items]
    assert len(products) == len(set(products))


def test_cold_start_puts_popular_items_first(service):
    for user in ("a", "b", "c"):
        like(service, user, "skirt-blue-3-a")
    like(service, "a", "dress-white-1-b")
    result = service.recommend(service.recommend_query(user_id="nobody", k=12, filters={}))
    assert result.items[0].item.id == "skirt-blue-3-a"
    assert "dress-white-1-b" in [r.item.id for r in result.items[:3]]  # popular, yet diversified
    assert result.items[0].reason == "popular with shoppers"


def test_personalize_reranks_hits_and_drops_disliked(service, catalog):
    like(service, "u", "t-shirt-red-0-a", "t-shirt-red-1-a", "t-shirt-red-2-a")
    like(service, "u", "t-shirt-black-0-a", kind="dislike")
    query = next(i for i in catalog if i.id == "t-shirt-white-0-a")
    hits = service.index.search(query.embedding, 40, Filters(type=("t-shirt",)))
    ranked = service.personalize("u", hits)
    assert "t-shirt-black-0-a" in {h.item.id for h in hits}
    assert "t-shirt-black-0-a" not in {h.item.id for h in ranked}
    reds = [i for i, h in enumerate(ranked) if h.item.color == "red"]
    reds_before = [i for i, h in enumerate(hits) if h.item.color == "red"]
    assert np.mean(reds) < np.mean(reds_before)
    assert service.personalize("stranger", hits) == hits


def test_bad_fields_are_named(service):
    with pytest.raises(InvalidRequest) as err:
        service.recommend_query(user_id="x" * 200, k="0", filters={"color": ["plaid"]})
    assert [p.name for p in err.value.problems] == ["user_id", "k", "color"]
    with pytest.raises(InvalidRequest) as err:
        service.with_personalize(lambda: 1, "\x00")
    assert [p.name for p in err.value.problems] == ["personalize"]


def test_cache_folds_in_new_events_and_forgets_a_forgotten_user(catalog):
    by_id = {i.id: i for i in catalog}
    lookups: list[str] = []

    def lookup(item_id):
        lookups.append(item_id)
        return by_id.get(item_id)

    store = MemoryEventStore()
    cache = ProfileCache(TasteModel(lookup, TasteParams()), store)
    store.add(event("u", "like", "jeans-black-0-a"))
    first = cache.get("u")
    assert first.events == 1 and "u" in cache
    assert cache.get("u") is first  # nothing new: the cached profile itself
    store.add(event("u", "like", "coat-white-0-a", at=1_000_050.0))
    second = cache.get("u")
    assert second.events == 2 and len(second.clusters) == 2
    assert lookups.count("jeans-black-0-a") == 1  # item vectors are not fetched again
    fresh = TasteModel(lookup, TasteParams()).build("u", store.events("u"))
    assert [c.medoid.id for c in fresh.clusters] == [c.medoid.id for c in second.clusters]
    store.forget("u")
    assert cache.get("u").events == 0 and "u" not in cache


def test_time_decay_lets_recent_taste_lead(catalog):
    by_id = {i.id: i for i in catalog}
    model = TasteModel(by_id.get, TasteParams(half_life_s=86400.0))
    day = 86400.0
    events = [event("u", "like", f"jeans-black-{n}-a", at=0.0) for n in range(3)]
    events += [event("u", "like", "coat-white-0-a", at=10 * day)]
    profile = model.build("u", events)
    assert profile.clusters[0].medoid.id == "coat-white-0-a"  # one fresh like outweighs three old ones
    assert profile.clusters[0].importance > 0.99


def test_mmr_prefers_a_different_item_over_a_near_copy():
    vectors = np.array([[1, 0], [0.999, 0.045], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert mmr(vectors, np.array([1.0, 0.99, 0.8]), 2, 0.7) == [0, 2]
    assert mmr(vectors, np.array([1.0, 0.99, 0.8]), 2, 1.0) == [0, 1]



def test_every_cluster_gets_a_slot_and_heavy_ones_get_more():
    from services.recommend import _schedule

    order = _schedule([0.9, 0.07, 0.03], 12)
    assert len(order) == 12 and set(order) == {0, 1, 2}
    assert order.count(0) >= 9 and order[0] == 0
    assert _schedule([0.5, 0.5], 4) == [0, 1, 0, 1]



def test_the_outfit_reranker_keeps_suggestions_and_drops_dislikes(service, catalog):
    from services.outfits import Suggestion

    like(service, "u", "coat-red-0-a", "coat-red-1-a")
    like(service, "u", "coat-blue-2-a", kind="dislike")
    coats = [i for i in catalog if i.type == "coat" and i.id.endswith("-a")]
    suggestions = [Suggestion(item=i, score=0.5, reason=f"goes with {i.title}") for i in coats]
    ranked = service.outfit_reranker("u", "outer", suggestions)
    assert all(isinstance(s, Suggestion) for s in ranked) and "coat-blue-2-a" not in {s.item.id for s in ranked}
    assert ranked[0].item.color == "red"
