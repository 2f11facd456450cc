"""One conformance suite for every events store: memory, SQLite and Elasticsearch.

Each test runs against the three stores, built through ``open_event_store``
from Settings as the app builds them (memory where the test is about
semantics, not durability). Elasticsearch runs against the real node at
``EYEPIC_ES_URL`` on throwaway aliases ``eyepic-events-conformance-<run>-<n>``,
deleted afterwards; with no node those cases skip, unless
``EYEPIC_REQUIRE_ES=1`` (CI) makes that a failure (as in test_index_conformance).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import uuid
from pathlib import Path

import pytest

from eyepic.settings import Settings
from taste.event_elasticsearch import ElasticsearchEventStore
from taste.event_sqlite import SQLiteEventStore
from taste.event_stores import open_event_store
from taste.events import Event, EventStoreUnavailable, MemoryEventStore

RUN = uuid.uuid4().hex[:8]
_COUNTER = itertools.count()
STORES = ["memory", "sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]
DURABLE = ["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)]


@pytest.fixture(scope="session")
def es_node() -> str:
    """The node's URL, or a skip (a failure under EYEPIC_REQUIRE_ES=1) when none answers."""
    from elasticsearch import Elasticsearch

    url = Settings.from_env().es_url
    client = Elasticsearch(url, request_timeout=10)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="10s")
    except Exception as exc:  # any failure to reach it means "no node"
        reason = f"no Elasticsearch node answers at {url} ({type(exc).__name__})"
        if os.environ.get("EYEPIC_REQUIRE_ES") == "1":
            pytest.fail(f"EYEPIC_REQUIRE_ES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    yield url
    client.options(ignore_status=404).indices.delete(index=f"eyepic-events-conformance-{RUN}-*",
                                                     expand_wildcards="all")
    client.close()


def store_settings(kind: str, tmp_path: Path) -> Settings:
    return Settings.from_env(events_store=kind, var_dir=tmp_path,
                             events_index_name=f"eyepic-events-conformance-{RUN}-{next(_COUNTER)}")


@pytest.fixture(params=STORES)
def kind(request) -> str:
    if request.param == "elasticsearch":
        request.getfixturevalue("es_node")
    return request.param


@pytest.fixture
def make_store(kind, tmp_path):
    """Open stores of the parametrized kind on one location (a reopen sees the same events)."""
    settings = store_settings(kind, tmp_path)
    opened = []

    def make():
        store = open_event_store(settings)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if kind == "elasticsearch":
        cleaner = open_event_store(settings)
        cleaner.drop()
        cleaner.close()


@pytest.fixture
def store(make_store):
    return make_store()


def ev(user: str, item: str, at: float, event_id: str, kind: str = "like") -> Event:
    return Event(user_id=user, kind=kind, item_id=item, at=at, event_id=event_id)


def test_the_factory_builds_what_settings_say(tmp_path):
    assert isinstance(open_event_store(Settings(var_dir=tmp_path)), SQLiteEventStore)  # embedded -> sqlite
    assert Settings(index="elasticsearch").events_backend == "elasticsearch"
    assert Settings(index="elasticsearch", events_store="sqlite").events_backend == "sqlite"
    assert isinstance(open_event_store(Settings(events_store="memory")), MemoryEventStore)
    es = open_event_store(Settings(events_store="elasticsearch", events_index_name="x-events"))
    assert isinstance(es, ElasticsearchEventStore) and es.alias == "x-events"
    es.close()


def test_add_is_idempotent_by_user_and_event_id(store):
    assert store.add(ev("u1", "item-a", 10.0, "e1")) is True
    assert store.add(ev("u1", "item-b", 11.0, "e1", kind="dislike")) is False  # a retry: nothing new
    assert store.add(ev("u2", "item-a", 10.0, "e1")) is True  # another user's e1 is another event
    assert [(e.item_id, e.kind) for e in store.events("u1")] == [("item-a", "like")]
    assert len(store.events("u2")) == 1


def test_events_come_oldest_first_ties_in_insertion_order(store):
    store.add(ev("u", "late", 30.0, "a"))
    store.add(ev("u", "tie-1", 20.0, "b"))
    store.add(ev("u", "early", 10.5, "c"))
    store.add(ev("u", "tie-2", 20.0, "d"))
    store.add(ev("u", "tie-3", 20.0, "0"))  # sorts before the others by id: order must not
    assert [e.item_id for e in store.events("u")] == ["early", "tie-1", "tie-2", "tie-3", "late"]
    assert store.events("u")[0] == ev("u", "early", 10.5, "c")  # every field round-trips
    assert store.events("nobody") == []


def test_users_and_forget(store):
    for i, user in enumerate(["zed", "amy", "amy", "bob"]):
        store.add(ev(user, f"item-{i}", float(i), f"e{i}"))
    assert store.users() == ["amy", "bob", "zed"]
    assert store.forget("amy") == 2
    assert store.forget("amy") == 0
    assert store.forget("nobody") == 0
    assert store.users() == ["bob", "zed"]
    assert store.events("amy") == []
    assert [e.item_id for e in store.events("bob")] == ["item-3"]
    assert store.add(ev("amy", "item-1", 1.0, "e1")) is True  # forgotten ids may be used again


def test_odd_but_valid_ids_round_trip(store):
    event = ev("user.name_1-x", "shop/sub dir/옷 1.jpg", 1_700_000_000.123456, "evt:2026-12-01/1")
    assert store.add(event) is True
    assert store.events("user.name_1-x") == [event]


def test_concurrent_retries_record_one_event(store):
    results: list[bool] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        for i in range(10):
            added = store.add(ev("racer", f"item-{i}", float(i), f"e{i}"))
            with lock:
                results.append(added)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 10 and len(results) == 40
    assert [e.event_id for e in store.events("racer")] == [f"e{i}" for i in range(10)]


@pytest.mark.parametrize("kind", DURABLE, indirect=True)
def test_events_survive_a_reopen(make_store):
    first = make_store()
    first.add(ev("u", "item-a", 1.0, "e1"))
    first.close()
    again = make_store()
    assert again.events("u") == [ev("u", "item-a", 1.0, "e1")]
    assert again.add(ev("u", "item-a", 1.0, "e1")) is False


@pytest.mark.parametrize("kind", ["elasticsearch"], indirect=True)
def test_elasticsearch_pages_through_many_events_and_users(kind, tmp_path):
    settings = store_settings("elasticsearch", tmp_path)
    store = ElasticsearchEventStore.from_settings(settings)
    store.page_size = 3
    try:
        for i in range(8):
            store.add(ev(f"user-{i % 4}", f"item-{i}", float(i), f"e{i}"))
        store.add(ev("user-0", "item-x", 100.0, "ex"))
        assert [e.item_id for e in store.events("user-0")] == ["item-0", "item-4", "item-x"]
        assert store.users() == [f"user-{i}" for i in range(4)]
        # behind an alias, as the app reads it
        assert list(store.client.indices.get_alias(name=settings.events_index_name)) == [
            f"{settings.events_index_name}-000001"]
    finally:
        store.drop()
        store.close()


def _write_from_a_process(path: str, worker: int) -> None:
    store = SQLiteEventStore(path)
    for i in range(50):
        store.add(ev(f"user-{i % 5}", f"item-{worker}-{i}", float(i), f"e{i}"))  # same ids in every process
        store.add(ev("mine", f"item-{worker}-{i}", float(i), f"w{worker}-{i}"))
    store.close()


def test_sqlite_is_safe_for_several_worker_processes(tmp_path):
    """gunicorn's workers share the file: concurrent writers lose nothing and duplicate nothing."""
    path = str(Settings(var_dir=tmp_path).events_path)
    SQLiteEventStore(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_from_a_process, args=(path, w)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    store = SQLiteEventStore(path)
    assert len(store.events("mine")) == 200
    assert sum(len(store.events(f"user-{u}")) for u in range(5)) == 50  # each retried id once
    store.close()


def test_sqlite_unwritable_file_is_unavailable(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(EventStoreUnavailable, match="cannot open the events file"):
        SQLiteEventStore(blocker / "events.sqlite")


def test_elasticsearch_down_is_unavailable():
    from elasticsearch import Elasticsearch

    store = ElasticsearchEventStore(Elasticsearch("http://127.0.0.1:9", request_timeout=1, max_retries=0),
                                    "eyepic-events-nowhere")
    with pytest.raises(EventStoreUnavailable, match="Elasticsearch events index"):
        store.add(ev("u", "i", 1.0, "e"))
    with pytest.raises(EventStoreUnavailable):
        store.events("u")
    store.close()
