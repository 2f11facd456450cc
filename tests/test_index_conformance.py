"""One conformance suite for every Index backend: embedded and Elasticsearch.

Each test runs against both backends, built through ``open_index`` from
Settings exactly as the app builds them, and checks the result against a
brute-force oracle (exact cosine over the same documents), so "same top
results across backends" follows from "each backend equals the oracle".

Elasticsearch runs against a real node at ``EYEPIC_ES_URL`` (start one with
``scripts/elasticsearch.sh start``), on throwaway aliases named
``eyepic-conformance-<run>-<n>`` that are deleted afterwards. With no node the
Elasticsearch cases skip, unless ``EYEPIC_REQUIRE_ES=1`` (CI) makes that a failure.

One module (about 500 lines) on purpose: it is the single contract every
backend is held to, and its parts share the backend fixtures and the oracle.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from eyepic.schema import Filters, Item
from eyepic.settings import Settings
from indexer.base import IndexUnavailable, KnnQuery, normalise
from indexer.factory import open_index

RUN = uuid.uuid4().hex[:8]
_COUNTER = itertools.count()
DIM = 32
BACKENDS = ["embedded", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]

GROUPS = ("top", "bottom", "outer", "onepiece")
TYPES = {
    "top": ("t-shirt", "blouse"), "bottom": ("jeans", "skirt"), "outer": ("coat",), "onepiece": ("dress",),
}
COLORS = ("black", "white", "red", "blue", "beige")
SHOPS = ("shop-a", "shop-b", "shop-c")


# -- backends ---------------------------------------------------------------
@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """The node's URL, or a skip (a failure under EYEPIC_REQUIRE_ES=1) when none answers."""
    from elasticsearch import Elasticsearch

    url = Settings.from_env().es_url
    client = Elasticsearch(url, request_timeout=10)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="10s")
    except Exception as exc:  # any failure to reach it means "no node"
        reason = (f"no Elasticsearch node answers at {url} ({type(exc).__name__}); "
                  "run `scripts/elasticsearch.sh start` or set EYEPIC_ES_URL")
        if os.environ.get("EYEPIC_REQUIRE_ES") == "1":
            pytest.fail(f"EYEPIC_REQUIRE_ES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    yield url
    # Belt and braces: whatever a failed test left behind under this run's prefix.
    client.options(ignore_status=404).indices.delete(
        index=f"eyepic-conformance-{RUN}-*", expand_wildcards="all"
    )
    client.close()


def _settings(backend: str, tmp_path, **overrides) -> Settings:
    if backend == "embedded":
        return Settings.from_env(index="embedded", var_dir=tmp_path, index_name="conformance", **overrides)
    return Settings.from_env(
        index="elasticsearch", var_dir=tmp_path, index_name=f"eyepic-conformance-{RUN}-{next(_COUNTER)}",
        **overrides,
    )


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "elasticsearch":
        request.getfixturevalue("es_url")
    return request.param


@pytest.fixture
def make_index(backend, tmp_path):
    """Open fresh indices of the parametrized backend; all closed and deleted after."""
    opened = []

    def make(**overrides):
        index = open_index(_settings(backend, tmp_path / str(len(opened)), **overrides))
        opened.append(index)
        return index

    yield make
    for index in opened:
        if backend == "elasticsearch":
            index.drop_all()
        index.close()


@pytest.fixture
def index(make_index):
    return make_index()


# -- data and oracle ---------------------------------------------------------
def catalog(n: int = 90, dim: int = DIM, seed: int = 7, photos_per_product: int = 3) -> list[Item]:
    """Clustered vectors (like embeddings of similar garments) with every attribute varied."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(8, dim))
    items = []
    for i in range(n):
        group = GROUPS[i % len(GROUPS)]
        types = TYPES[group]
        vector = centers[i % len(centers)] + 0.6 * rng.normal(size=dim)
        items.append(Item(
            id=f"item-{i:03d}",
            embedding=vector.astype(np.float32),
            group=group,
            type=types[(i // len(GROUPS)) % len(types)],
            color=COLORS[(i // 2) % len(COLORS)],
            title=f"{group} number {i}",
            image_path=f"/catalog/{i}.jpg",
            product_id=f"prod-{i // photos_per_product:03d}",
            url=f"https://shop.example/p/{i}",
            price=float(10 + i),
            shop=SHOPS[i % len(SHOPS)],
            brand=f"brand-{i % 4}",
            attributes=("long-sleeve",) if i % 2 else ("short-sleeve", "striped"),
            model_version="m-1",
        ))
    return items


def oracle(items: list[Item], query: np.ndarray, k: int, filters: Filters | None = None,
           exclude: tuple[str, ...] = (), collapse: bool = True) -> list[tuple[str, float]]:
    """Exact filtered top-k by cosine, collapsed by product keeping the best photo."""
    filters = filters or Filters()
    q = normalise(query).reshape(-1)
    scored = sorted(
        ((float(normalise(it.embedding).reshape(-1) @ q), it) for it in items
         if filters.matches(it) and it.id not in exclude),
        key=lambda pair: -pair[0],
    )
    out, seen = [], set()
    for score, it in scored:
        if collapse and it.product_id in seen:
            continue
        seen.add(it.product_id)
        out.append((it.id, score))
        if len(out) == k:
            break
    return out


def assert_same_hits(hits, expected, tol: float = 1e-3) -> None:
    assert [h.item.id for h in hits] == [i for i, _ in expected]
    for hit, (_, score) in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(score, abs=tol)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


FILTER_CASES = [
    Filters(),
    Filters(group=("top",)),
    Filters(group=("top", "bottom")),
    Filters(group=("bottom",), color=("black", "red")),
    Filters(color=("beige",), shop=("shop-b",)),
    Filters(type=("coat", "dress"), shop=("shop-a", "shop-c")),
]


# -- the suite ---------------------------------------------------------------
def test_empty_index_answers_empty(index):
    assert index.search(np.ones(DIM, dtype=np.float32), 5) == []
    assert index.count() == 0
    assert index.ids() == set()
    assert index.get("nothing") is None
    assert index.delete(["nothing"]) == 0


def test_upsert_then_get_round_trips_every_field(index):
    items = catalog(12)
    index.upsert(items)
    for item in items:
        got = index.get(item.id)
        assert got is not None
        for field in dataclasses.fields(Item):
            if field.name == "embedding":
                np.testing.assert_allclose(got.embedding, normalise(item.embedding).reshape(-1), atol=1e-6)
            else:
                assert getattr(got, field.name) == getattr(item, field.name), field.name


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: str(f.as_dict()) or "none")
def test_count_follows_filter_semantics(index, filters):
    items = catalog()
    index.upsert(items)
    assert index.count(filters) == sum(filters.matches(it) for it in items)


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: str(f.as_dict()) or "none")
@pytest.mark.parametrize("collapse", [True, False], ids=["collapse", "all-photos"])
def test_search_equals_exact_filtered_top_k(index, filters, collapse):
    items = catalog()
    index.upsert(items)
    rng = np.random.default_rng(3)
    for query in [items[5].embedding, items[40].embedding, rng.normal(size=DIM)]:
        for k in (1, 5, 12):
            hits = index.search(query, k, filters, collapse=collapse)
            assert_same_hits(hits, oracle(items, query, k, filters, collapse=collapse))
            assert all(filters.matches(h.item) for h in hits)


def test_search_many_equals_one_search_per_query(index):
    items = catalog()
    index.upsert(items)
    rng = np.random.default_rng(11)
    queries = [KnnQuery(items[3].embedding, 5), KnnQuery(rng.normal(size=DIM), 12, Filters(color=("red",))),
               KnnQuery(items[50].embedding, 1, Filters(group=("top",), shop=("shop-a",))),
               KnnQuery(items[7].embedding, 4, Filters(color=("no-such-color",)))]
    exclude = [items[3].id, items[4].id]
    for collapse in (True, False):
        answers = index.search_many(queries, exclude_ids=exclude, collapse=collapse)
        assert len(answers) == len(queries)
        for query, hits in zip(queries, answers):
            assert_same_hits(hits, oracle(items, query.vector, query.k, query.filters, tuple(exclude), collapse))
    assert index.search_many([]) == []


def test_filtered_search_at_scale_honours_the_filter(index, backend):
    """Ten thousand items, a 10% filter: every hit matches, k come back, top-k is right."""
    n = 10_000
    vectors = clustered_vectors(n + 10, 16, seed=9, clusters=60)
    items = [Item(id=f"s{i}", embedding=vectors[i], group=GROUPS[i % 4], type="t", color=COLORS[i % 5],
                  shop=f"shop-{i % 10}") for i in range(n)]
    index.upsert(items)
    overlap = 0
    for filters in (Filters(), Filters(shop=("shop-3",)), Filters(group=("top",), color=("red", "blue"))):
        for q in vectors[n:]:
            hits = index.search(q, 10, filters, collapse=False)
            assert len(hits) == 10 and all(filters.matches(h.item) for h in hits)
            expected = oracle(items, q, 10, filters, collapse=False)
            if backend == "embedded":
                assert_same_hits(hits, expected)
            overlap += len({h.item.id for h in hits} & {i for i, _ in expected})
    assert overlap / (3 * 10 * 10) >= 0.95


def test_exactly_k_hits_when_k_items_match(index):
    items = catalog()
    index.upsert(items)
    rare = Filters(group=("outer",), color=("red",), shop=("shop-a",))
    matching = [it for it in items if rare.matches(it)]
    assert 1 <= len(matching) < 10
    query = items[0].embedding  # a query far from most of the matches
    hits = index.search(query, len(matching), rare, collapse=False)
    assert sorted(h.item.id for h in hits) == sorted(it.id for it in matching)
    assert len(index.search(query, 50, rare, collapse=False)) == len(matching)
    ten = Filters(group=("top",))
    assert len(index.search(query, 10, ten, collapse=False)) == 10


def test_collapse_keeps_one_best_photo_per_product(index):
    items = catalog(photos_per_product=5)
    index.upsert(items)
    query = items[11].embedding
    hits = index.search(query, 8)
    products = [h.item.product_id for h in hits]
    assert len(products) == len(set(products)) == 8
    assert hits[0].item.id == "item-011"  # the query's own photo beats its product's others
    assert_same_hits(hits, oracle(items, query, 8))


def test_collapse_returns_k_products_when_photos_crowd_the_top(index):
    # 40 photos of one product sit closest to the query; 10 other products lie farther out.
    rng = np.random.default_rng(11)
    base = normalise(rng.normal(size=DIM)).reshape(-1)
    items = [Item(id=f"same-{i}", embedding=base + 0.05 * rng.normal(size=DIM).astype(np.float32),
                  group="top", type="t-shirt", color="black", product_id="crowd") for i in range(40)]
    items += [Item(id=f"other-{i}", embedding=base + 0.8 * rng.normal(size=DIM).astype(np.float32),
                   group="top", type="t-shirt", color="black") for i in range(10)]
    index.upsert(items)
    hits = index.search(base, 5)
    assert len(hits) == 5
    assert_same_hits(hits, oracle(items, base, 5))


def test_exclude_ids_are_never_returned(index):
    items = catalog()
    index.upsert(items)
    query = items[7].embedding
    exclude = ("item-007", "item-010", "missing")
    hits = index.search(query, 10, exclude_ids=exclude, collapse=False)
    assert not {h.item.id for h in hits} & set(exclude)
    assert_same_hits(hits, oracle(items, query, 10, exclude=exclude, collapse=False))


def test_upsert_is_idempotent_and_replaces(index):
    items = catalog(30)
    index.upsert(items)
    index.upsert(items)
    index.upsert(items[:10])
    assert index.count() == 30
    assert index.ids() == {it.id for it in items}
    changed = dataclasses.replace(items[3], color="white", embedding=-items[3].embedding, title="new")
    index.upsert([changed])
    assert index.count() == 30
    got = index.get(changed.id)
    assert (got.color, got.title) == ("white", "new")
    items[3] = changed
    assert_same_hits(index.search(changed.embedding, 4, collapse=False),
                     oracle(items, changed.embedding, 4, collapse=False))
    assert index.count(Filters(color=("white",))) == sum(it.color == "white" for it in items)


def test_delete_removes_and_counts(index):
    items = catalog(30)
    index.upsert(items)
    assert index.delete(["item-001", "item-002", "missing", "item-001"]) == 2
    assert index.delete(["item-001"]) == 0
    assert index.count() == 28
    assert index.get("item-001") is None
    assert "item-002" not in index.ids()
    hits = index.search(items[1].embedding, 30, collapse=False)
    assert {"item-001", "item-002"}.isdisjoint(h.item.id for h in hits)
    assert len(hits) == 28


def test_facets_count_values_per_field(index):
    items = catalog()
    index.upsert(items)
    facets = index.facets()
    for name in ("group", "type", "color", "shop"):
        expected: dict[str, int] = {}
        for it in items:
            expected[getattr(it, name)] = expected.get(getattr(it, name), 0) + 1
        assert facets[name] == expected


def test_wrong_dimension_is_refused(index):
    index.upsert(catalog(4))
    with pytest.raises(IndexUnavailable):
        index.upsert([Item(id="bad", embedding=np.ones(DIM + 1, dtype=np.float32), group="top",
                           type="t-shirt", color="black")])
    with pytest.raises(IndexUnavailable):
        index.search(np.ones(DIM + 3, dtype=np.float32), 3)
    assert index.count() == 4


@pytest.mark.elasticsearch
def test_backends_return_the_same_results(es_url, tmp_path):
    items = catalog(120, photos_per_product=2)
    embedded = open_index(_settings("embedded", tmp_path / "e"))
    elastic = open_index(_settings("elasticsearch", tmp_path / "s"))
    try:
        embedded.upsert(items)
        elastic.upsert(items)
        rng = np.random.default_rng(5)
        for query in [it.embedding for it in items[::17]] + [rng.normal(size=DIM) for _ in range(3)]:
            for filters in FILTER_CASES:
                a = embedded.search(query, 10, filters)
                b = elastic.search(query, 10, filters)
                assert [h.item.id for h in a] == [h.item.id for h in b]
                np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-3)
        assert embedded.facets() == elastic.facets()
        assert embedded.count(Filters(color=("red",))) == elastic.count(Filters(color=("red",)))
    finally:
        embedded.close()
        elastic.drop_all()
        elastic.close()


# -- Elasticsearch only: mapping, versions, bulk ------------------------------
@pytest.fixture
def es_index(es_url, tmp_path):
    index = open_index(_settings("elasticsearch", tmp_path))
    yield index
    index.drop_all()
    index.close()


@pytest.mark.elasticsearch
def test_es_mapping_is_what_the_settings_say(es_url, tmp_path):
    index = open_index(_settings("elasticsearch", tmp_path, es_hnsw_m=24, es_ef_construction=64))
    try:
        index.upsert(catalog(3))
        name = index.current_version()
        assert name.startswith(f"{index.alias}-m-1-")
        props = index.client.indices.get_mapping(index=index.alias)[name]["mappings"]["properties"]
        vector = props["embedding"]
        assert (vector["type"], vector["dims"], vector["similarity"]) == ("dense_vector", DIM, "dot_product")
        assert vector["index_options"]["type"] == "int8_hnsw"
        assert (vector["index_options"]["m"], vector["index_options"]["ef_construction"]) == (24, 64)
        for field in ("group", "type", "color", "attributes", "shop", "brand", "product_id", "model_version"):
            assert props[field]["type"] == "keyword"
        assert props["title"]["type"] == "text" and props["price"]["type"] == "float"
        assert props["indexed_at"]["type"] == "date"
        assert props["image_path"]["index"] is False and props["url"]["index"] is False
        got = index.client.get(index=index.alias, id="item-000")["_source"]
        assert got["indexed_at"] and got["image_path"] == "/catalog/0.jpg"
    finally:
        index.drop_all()
        index.close()


def refresh_interval(index, name: str) -> str | None:
    return index.client.indices.get_settings(index=name)[name]["settings"]["index"].get("refresh_interval")


@pytest.mark.elasticsearch
def test_es_alias_swap_keeps_search_working(es_index):
    """A new model version reindexes into a new index; readers never see a gap."""
    old = catalog(60, seed=1)
    es_index.upsert(old)
    v1 = es_index.current_version()
    query = old[0].embedding
    errors: list[BaseException] = []
    seen_versions: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                hits = es_index.search(query, 5)
                if len(hits) != 5:
                    errors.append(AssertionError(f"{len(hits)} hits during the swap"))
                seen_versions.update(h.item.model_version for h in hits)
            except BaseException as exc:  # noqa: BLE001 - report anything the reader hit
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        new = [dataclasses.replace(it, model_version="m-2") for it in catalog(60, seed=2)]
        v2 = es_index.create_version("m-2")
        assert v2 != v1 and es_index.current_version() == v1
        target = es_index.using(v2)
        with target.bulk_load():
            settings = es_index.client.indices.get_settings(index=v2, name="index.refresh_interval")
            assert settings[v2]["settings"]["index"]["refresh_interval"] == "-1"
            target.upsert(new)
        assert refresh_interval(es_index, v2) is None
        assert target.count() == 60 and es_index.count() == 60
        time.sleep(0.3)
        assert es_index.swap_alias(v2) == [v1]
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert seen_versions == {"m-1", "m-2"}
    assert es_index.current_version() == v2
    assert_same_hits(es_index.search(new[0].embedding, 5), oracle(new, new[0].embedding, 5))
    assert set(es_index.versions()) == {v1, v2}
    with pytest.raises(IndexUnavailable):
        es_index.drop_version(v2)
    es_index.drop_version(v1)
    assert es_index.versions() == [v2]


@pytest.mark.elasticsearch
def test_es_big_upsert_turns_refresh_off_and_back(es_index):
    items = catalog(1200, dim=8)
    es_index.upsert(items)
    name = es_index.current_version()
    assert refresh_interval(es_index, name) is None
    assert es_index.count() == 1200
    es_index.upsert(items)  # a re-run after a crash converges on exactly the catalog
    assert es_index.count() == 1200


@pytest.mark.elasticsearch
@pytest.mark.parametrize("chunk, threads", [(100, 3), (1000, 1)])
def test_es_bulk_streams_land_every_item_once(es_url, tmp_path, chunk, threads):
    """Requests in flight at once (``es_bulk_threads``) write exactly the items, each whole."""
    index = open_index(_settings("elasticsearch", tmp_path, es_bulk_chunk=chunk, es_bulk_threads=threads))
    try:
        items = catalog(1250, dim=8)
        index.upsert(items)
        assert (index.bulk_chunk, index.bulk_threads) == (chunk, threads)
        assert index.count() == 1250 and index.ids() == {it.id for it in items}
        assert refresh_interval(index, index.current_version()) is None
        got = index.get(items[777].id)
        assert got is not None and np.allclose(got.embedding, normalise(items[777].embedding), atol=1e-6)
    finally:
        index.drop_all()
        index.close()


# -- recall on 10k vectors -----------------------------------------------------
def clustered_vectors(n: int, dim: int, seed: int = 0, clusters: int = 500) -> np.ndarray:
    """Embedding-like data: tight-ish clusters around random centres, unit length."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, size=n)
    return normalise(centres[labels] + 0.9 * rng.normal(size=(n, dim)).astype(np.float32))


@pytest.mark.slow
@pytest.mark.elasticsearch
def test_es_recall_at_10_against_exact_search(es_url, tmp_path):
    n, dim, queries = 10_000, 512, 100
    vectors = clustered_vectors(n + queries, dim, seed=42)
    shops = [f"shop-{i % 10}" for i in range(n)]  # one shop = a 10% filter
    items = [Item(id=f"v{i}", embedding=vectors[i], group="top", type="t-shirt", color="black",
                  shop=shops[i]) for i in range(n)]
    embedded = open_index(_settings("embedded", tmp_path / "e"))
    elastic = open_index(_settings("elasticsearch", tmp_path / "s"))
    try:
        for start in range(0, n, 2000):
            embedded.upsert(items[start:start + 2000])
        with elastic.bulk_load():
            for start in range(0, n, 2000):
                elastic.upsert(items[start:start + 2000])
        assert elastic.count() == n
        elastic.client.indices.forcemerge(index=elastic.alias, max_num_segments=1)
        for filters in (Filters(), Filters(shop=("shop-3",))):
            found = 0
            for q in vectors[n:]:
                exact = {h.item.id for h in embedded.search(q, 10, filters, collapse=False)}
                approx = {h.item.id for h in elastic.search(q, 10, filters, collapse=False)}
                found += len(exact & approx)
            recall = found / (10 * queries)
            print(f"recall@10 {filters.as_dict() or 'no filter'}: {recall:.3f}")
            assert recall >= 0.95, (filters, recall)
    finally:
        embedded.close()
        elastic.drop_all()
        elastic.close()
