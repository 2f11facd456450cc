"""The production events store: an Elasticsearch index behind an alias.

Why this shape:

* Readers and writers use the alias (``events_index_name``); the first store
  to find no alias creates ``<alias>-000001`` behind it, so a later reindex
  (new mapping, more shards) swaps the alias without touching the app.
* Idempotent by the document id, a hash of ``user_id`` and the client's
  ``event_id``, written with ``op_type=create``: a retry gets 409 (from the
  version map, no refresh needed) and records nothing new, whichever web pod
  it lands on.
* Routed by user id: one user's events sit on one shard, so reading or
  forgetting a shopper asks one shard, not all.
* Reads its own writes: each write asks for ``refresh=true`` on its shard,
  so the taste model reading right after a like sees it. That costs a small
  segment per write (measured in ``bench.events_bench``); at high write rates
  ``wait_for`` would batch them at the price of up to a refresh interval.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, ConflictError, Elasticsearch, NotFoundError

from eyepic.settings import Settings
from taste.events import Event, EventStoreUnavailable

PAGE = 5000  # hits per page when reading a user's events or the user list
MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "user_id": {"type": "keyword"},
        "event_id": {"type": "keyword"},
        "kind": {"type": "keyword"},
        "item_id": {"type": "keyword"},
        "at": {"type": "double"},  # seconds since the epoch, as the protocol speaks
        "seq": {"type": "long"},  # recording time in ns plus a counter: insertion order for ties in ``at``
    },
}


def document_id(user_id: str, event_id: str) -> str:
    """A fixed-length id for (user, client event id), whatever characters they hold."""
    return hashlib.sha256(f"{user_id}\x00{event_id}".encode()).hexdigest()


@contextlib.contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except (TransportError, ApiError) as exc:
        raise EventStoreUnavailable(f"Elasticsearch events index: cannot {what}: {exc}") from exc


class ElasticsearchEventStore:
    """Events in an Elasticsearch index; one object is safe to share between threads."""

    def __init__(self, client: Elasticsearch, alias: str = "eyepic-events", *, replicas: int = 0,
                 owns_client: bool = True, page_size: int = PAGE, refresh: bool | str = True):
        self.client = client
        self.alias = alias
        self.replicas = replicas
        self._owns_client = owns_client
        self._ready = False
        self._seq = itertools.count()
        self.page_size = page_size
        self.refresh = refresh  # True: reads see each write at once; "wait_for"/False trade that for write cost

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchEventStore:
        """Connects lazily: the app starts while the node is still coming up (503 until it answers)."""
        client = Elasticsearch(settings.es_url, request_timeout=settings.es_timeout_s, max_retries=3,
                               retry_on_status=(429, 502, 503, 504), retry_on_timeout=True)
        return cls(client, settings.events_index_name, replicas=settings.es_replicas)

    def _ensure(self) -> None:
        """Create the first index behind the alias unless the alias exists (once per process)."""
        if self._ready:
            return
        with _unavailable("create the events index"):
            if not self.client.indices.exists_alias(name=self.alias):
                try:
                    self.client.indices.create(
                        index=f"{self.alias}-000001", mappings=MAPPING,
                        settings={"number_of_replicas": self.replicas},
                        aliases={self.alias: {"is_write_index": True}})
                except ApiError as exc:  # another worker created it first
                    if exc.meta.status != 400 or "already_exists" not in str(exc):
                        raise
        self._ready = True

    def add(self, event: Event) -> bool:
        self._ensure()
        seq = time.time_ns() + next(self._seq) % 1000
        source = {"user_id": event.user_id, "event_id": event.event_id, "kind": event.kind,
                  "item_id": event.item_id, "at": float(event.at), "seq": seq}
        with _unavailable("record an event"):
            try:
                self.client.create(index=self.alias, id=document_id(event.user_id, event.event_id),
                                   document=source, routing=event.user_id, refresh=self.refresh)
            except ConflictError:
                return False
        return True

    def events(self, user_id: str) -> list[Event]:
        self._ensure()
        out: list[Event] = []
        after: list[Any] | None = None
        with _unavailable("read events"):
            while True:
                page = self.client.search(
                    index=self.alias, routing=user_id, query={"term": {"user_id": user_id}}, size=self.page_size,
                    sort=[{"at": "asc"}, {"seq": "asc"}, {"event_id": "asc"}], search_after=after,
                    track_total_hits=False, source=["user_id", "kind", "item_id", "at", "event_id"])
                hits = page["hits"]["hits"]
                out += [Event(h["_source"]["user_id"], h["_source"]["kind"], h["_source"]["item_id"],
                              h["_source"]["at"], h["_source"]["event_id"]) for h in hits]
                if len(hits) < self.page_size:
                    return out
                after = hits[-1]["sort"]

    def users(self) -> list[str]:
        self._ensure()
        users: list[str] = []
        after: dict[str, Any] | None = None
        with _unavailable("list users"):
            while True:
                composite: dict[str, Any] = {"size": self.page_size,
                                             "sources": [{"user": {"terms": {"field": "user_id"}}}]}
                if after:
                    composite["after"] = after
                page = self.client.search(index=self.alias, size=0, aggs={"users": {"composite": composite}})
                agg = page["aggregations"]["users"]
                users += [b["key"]["user"] for b in agg["buckets"]]
                after = agg.get("after_key")
                if not agg["buckets"] or not after:
                    return sorted(users)

    def forget(self, user_id: str) -> int:
        """Search the user's ids and bulk-delete them (``_delete_by_query`` needs the reindex
        module, which not every distribution ships); repeated until none is left."""
        self._ensure()
        deleted = 0
        with _unavailable("forget a user"):
            while True:
                page = self.client.search(index=self.alias, routing=user_id, query={"term": {"user_id": user_id}},
                                          size=self.page_size, source=False, track_total_hits=False)
                ids = [hit["_id"] for hit in page["hits"]["hits"]]
                if not ids:
                    return deleted
                actions = [{"delete": {"_index": self.alias, "_id": i, "routing": user_id}} for i in ids]
                answer = self.client.bulk(operations=actions, refresh=self.refresh)
                deleted += sum(1 for entry in answer["items"] if entry["delete"].get("result") == "deleted")

    def drop(self) -> None:
        """Delete the alias's indices (tests and throwaway deployments)."""
        with _unavailable("drop the events index"):
            try:
                indices = list(self.client.indices.get_alias(name=self.alias))
            except NotFoundError:
                return
            self.client.indices.delete(index=",".join(indices))
        self._ready = False

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
