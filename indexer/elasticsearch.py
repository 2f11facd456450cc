"""The Elasticsearch index backend: HNSW kNN with attribute pre-filters.

Why this shape:

* Versioned indices behind one alias (``indexer.es_versions``): readers
  always go through the alias and a reindex swaps it atomically.
* Mapping and documents as data (``indexer.es_schema``).
* Filters sit *inside* the ``knn`` clause: a pre-filter, so k hits come back
  whenever k documents match (a post-filter would return short pages).
  Collapse by ``product_id`` happens after kNN, so the kNN ``k`` is widened
  until k distinct products come back or the matching documents run out.
* Bulk writes use ``helpers.streaming_bulk`` with retries on 429, split over
  ``bulk_threads`` requests in flight (the node builds the HNSW graph of
  concurrent requests in parallel: +20 % docs/s on 2 cores, bench.index_bench);
  big loads switch ``refresh_interval`` off and restore it after (the translog
  stays durable: an async one gained nothing measurable and could lose
  acknowledged writes to the live index). Ids are the item ids, so re-running
  a crashed load converges on exactly the catalog.

Scores: Elasticsearch reports ``(1 + dot) / 2`` for ``dot_product``; hits are
converted back to cosine so both backends speak the same scale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError, helpers

from eyepic.exports import embedding_dim
from eyepic.schema import Filters, Hit, Item
from eyepic.settings import Settings
from indexer.base import IndexUnavailable, KnnQuery, normalise
from indexer.es_schema import FILTER_FIELDS, VECTOR_FIELD, es_errors, item_of_source, item_source, slug
from indexer.es_versions import AliasVersions
from indexer.writer_lock import EsWriterLock

FACET_SIZE = 1000
MAX_KNN = 10_000  # Elasticsearch's ceiling for k and num_candidates
BULK_REFRESH_OFF_AT = 1000  # an upsert this large turns refresh off while it runs
NO_FILTERS = Filters()


class ElasticsearchIndex(AliasVersions):
    """An :class:`indexer.base.Index` on Elasticsearch 9.

    ``name`` is the alias readers use, or (for a view from :meth:`using`) one
    concrete versioned index that a reindex writes into before the swap.
    """

    def __init__(
        self,
        client: Elasticsearch,
        alias: str = "eyepic-items",
        *,
        name: str | None = None,
        num_candidates: int = 200,
        m: int = 16,
        ef_construction: int = 100,
        min_similarity: float | None = None,
        rescore_oversample: float = 2.0,
        replicas: int = 0,
        dims_hint: int | None = None,
        owns_client: bool = True,
        bulk_chunk: int = 1000,
        bulk_threads: int = 2,
    ):
        self.client = client
        self.alias = alias
        self.name = name or alias
        self.num_candidates = num_candidates
        self.m = m
        self.ef_construction = ef_construction
        self.min_similarity = min_similarity
        self.rescore_oversample = rescore_oversample
        self.replicas = replicas
        self.dims_hint = dims_hint
        self._owns_client = owns_client
        self.bulk_chunk = bulk_chunk
        self.bulk_threads = bulk_threads
        self._dims: int | None = None
        self._bulk_depth = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchIndex:
        """Build from :class:`eyepic.settings.Settings`; connects lazily."""
        client = Elasticsearch(
            settings.es_url,
            request_timeout=settings.es_timeout_s,
            max_retries=3,
            retry_on_status=(429, 502, 503, 504),
            retry_on_timeout=True,
        )
        return cls(
            client,
            settings.index_name,
            num_candidates=settings.es_num_candidates,
            m=settings.es_hnsw_m,
            ef_construction=settings.es_ef_construction,
            min_similarity=settings.es_min_similarity if settings.es_min_similarity > -1 else None,
            rescore_oversample=settings.es_rescore_oversample,
            replicas=settings.es_replicas,
            dims_hint=embedding_dim(settings.model_dir, settings.classifier_name),
            bulk_chunk=settings.es_bulk_chunk,
            bulk_threads=settings.es_bulk_threads,
        )

    # -- health ---------------------------------------------------------
    def ping(self) -> bool:
        """True when the cluster answers. (Not ``client.ping()``: that is ``HEAD /``,
        which the integ-test distribution does not serve.)"""
        try:
            self.client.cluster.health(timeout="2s")
        except (TransportError, ApiError):
            return False
        return True

    def server_version(self) -> str:
        with es_errors("read the node version"):
            nodes = self.client.nodes.info(node_id="_local", metric="_none", filter_path="nodes.*.version")
        return next(iter(nodes["nodes"].values()))["version"]

    def using(self, index_name: str) -> ElasticsearchIndex:
        """A view that reads and writes one concrete index (to fill it before a swap)."""
        view = ElasticsearchIndex(
            self.client, self.alias, name=index_name, num_candidates=self.num_candidates, m=self.m,
            ef_construction=self.ef_construction, min_similarity=self.min_similarity,
            rescore_oversample=self.rescore_oversample, replicas=self.replicas,
            dims_hint=self.dims_hint, owns_client=False, bulk_chunk=self.bulk_chunk,
            bulk_threads=self.bulk_threads,
        )
        return view

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[ElasticsearchIndex]:
        """Refresh off while loading (far fewer tiny segments); restored and refreshed after."""
        if self._bulk_depth or not self._exists():
            self._bulk_depth += 1
            try:
                yield self
            finally:
                self._bulk_depth -= 1
                if not self._bulk_depth:
                    self._refresh()
            return
        with es_errors("read refresh_interval"):
            concrete = self.client.indices.get_settings(index=self.name)
        # None (unset) restores the default of 1 s.
        before = {idx: body["settings"]["index"].get("refresh_interval") for idx, body in concrete.items()}
        with es_errors("turn refresh off"):
            self.client.indices.put_settings(index=self.name, settings={"index": {"refresh_interval": "-1"}})
        self._bulk_depth += 1
        try:
            yield self
        finally:
            self._bulk_depth -= 1
            with es_errors("restore refresh_interval"):
                for idx, value in before.items():
                    self.client.indices.put_settings(
                        index=idx, settings={"index": {"refresh_interval": value}}
                    )
            self._refresh()

    @contextlib.contextmanager
    def writer(self, model_version: str, lock_stale_s: float = 60.0) -> Iterator[ElasticsearchIndex]:
        """What one indexing job writes into, under the alias's writer lock.

        With a live alias: the live index (each item lands whole). Without one (a first
        build): a staging version, the one a killed or failed job left when there is one
        (its items are skipped, so the rerun only does the rest), that the alias points at
        only once the job has finished: readers never see a half-built index.
        """
        with EsWriterLock(self.client, self.alias, lock_stale_s).held():
            if self._alias_targets():
                yield self
                return
            prefix = f"{self.alias}-{slug(model_version) or 'unversioned'}-"
            orphans = self.versions()
            resumable = [name for name in orphans if name.startswith(prefix)]
            staging = resumable[-1] if resumable else self.create_version(model_version)
            view = self.using(staging)
            yield view
            view._refresh()
            self.swap_alias(staging)
            for name in orphans:
                if name != staging:
                    self.drop_version(name)

    # -- writes ---------------------------------------------------------
    def upsert(self, items: Sequence[Item]) -> None:
        if not items:
            return
        vectors = [normalise(item.embedding).reshape(-1) for item in items]
        dims = {len(v) for v in vectors}
        if len(dims) != 1:
            raise IndexUnavailable(f"items have vectors of different sizes: {sorted(dims)}")
        dim = dims.pop()
        if not self._exists():
            if self.name != self.alias:
                raise IndexUnavailable(f"index {self.name} does not exist")
            self.swap_alias(self.create_version(items[0].model_version, dim))
        held = self._current_dims()
        if held is not None and held != dim:
            raise IndexUnavailable(f"items have {dim}-d vectors; the index holds {held}-d")
        for item, vector in zip(items, vectors, strict=True):
            if not np.isfinite(vector).all() or not vector.any():
                raise IndexUnavailable(f"item {item.id!r} has a zero or non-finite vector")
        now = dt.datetime.now(dt.UTC).isoformat()
        actions = (
            {"_op_type": "index", "_index": self.name, "_id": item.id, "_source": item_source(item, vector, now)}
            for item, vector in zip(items, vectors, strict=True)
        )
        load = self.bulk_load() if len(items) >= BULK_REFRESH_OFF_AT and not self._bulk_depth else None
        with load or contextlib.nullcontext():
            failures = self._bulk(actions)
            if failures:
                raise IndexUnavailable(f"{len(failures)} of {len(items)} documents failed, e.g. {failures[0]}")
            if not self._bulk_depth:
                self._refresh()

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(ids))
        if not ids or not self._exists():
            return 0
        deleted = 0
        with es_errors("delete"):
            for ok, info in helpers.streaming_bulk(
                self.client,
                ({"_op_type": "delete", "_index": self.name, "_id": i} for i in ids),
                chunk_size=500, max_retries=5, initial_backoff=1, max_backoff=30,
                raise_on_error=False, yield_ok=True,
            ):
                result = info.get("delete", {})
                if ok and result.get("result") == "deleted":
                    deleted += 1
                elif not ok and result.get("status") != 404:
                    raise IndexUnavailable(f"delete failed: {result}")
        if not self._bulk_depth:
            self._refresh()
        return deleted

    # -- reads ----------------------------------------------------------
    def get(self, item_id: str) -> Item | None:
        try:
            doc = self.client.get(index=self.name, id=item_id, source_exclude_vectors=False)
        except NotFoundError:
            return None
        except (TransportError, ApiError) as exc:
            raise IndexUnavailable(f"Elasticsearch: get {item_id!r}: {exc}") from exc
        return item_of_source(doc["_source"])

    def ids(self) -> set[str]:
        if not self._exists():
            return set()
        with es_errors("list ids"):
            return {
                hit["_id"]
                for hit in helpers.scan(self.client, index=self.name, query={"query": {"match_all": {}}},
                                        _source=False, size=5000, preserve_order=False)
            }

    def count(self, filters: Filters = NO_FILTERS) -> int:
        if not self._exists():
            return 0
        with es_errors("count"):
            return int(self.client.count(index=self.name, query=_filter_query(filters))["count"])

    def facets(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {name: {} for name in FILTER_FIELDS}
        if not self._exists():
            return out
        with es_errors("facets"):
            res = self.client.search(
                index=self.name, size=0,
                aggs={name: {"terms": {"field": name, "size": FACET_SIZE}} for name in FILTER_FIELDS},
            )
        for name in FILTER_FIELDS:
            out[name] = {b["key"]: b["doc_count"] for b in res["aggregations"][name]["buckets"] if b["key"]}
        return out

    def search(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters = NO_FILTERS,
        exclude_ids: Iterable[str] = (),
        collapse: bool = True,
    ) -> list[Hit]:
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self._exists():
            return []
        query = self._query_vector(vector)
        exclude = list(dict.fromkeys(exclude_ids))
        knn_filter = _filter_query(filters, exclude)
        # Collapse drops a product's extra photos after kNN: ask for more docs than k,
        # and widen until k products come back or the matching documents run out.
        want = min(MAX_KNN, k * 4 if collapse else k)
        while True:
            hits, exhausted = self._knn(query, k, want, knn_filter, collapse)
            if len(hits) >= k or exhausted or want >= MAX_KNN:
                return hits[:k]
            want = min(MAX_KNN, want * 4)

    def search_many(self, queries: Sequence[KnnQuery], exclude_ids: Iterable[str] = (),
                    collapse: bool = True) -> list[list[Hit]]:
        """Every query in one ``_msearch`` round trip; a query whose collapsed page came back
        short (and could have more) is widened on its own, as ``search`` does."""
        if any(q.k < 1 for q in queries):
            raise ValueError("k must be at least 1")
        if not queries or not self._exists():
            return [[] for _ in queries]
        exclude = list(dict.fromkeys(exclude_ids))
        prepared = [(self._query_vector(q.vector), q, _filter_query(q.filters, exclude)) for q in queries]
        wants = [min(MAX_KNN, q.k * 4 if collapse else q.k) for _, q, _ in prepared]
        searches: list[dict[str, Any]] = []
        for (vector, q, knn_filter), want in zip(prepared, wants, strict=True):
            body = self._knn_body(vector, q.k, want, knn_filter, collapse)
            # the search API's keyword "source" is the body's "_source"
            searches += [{"index": self.name}, {("_source" if key == "source" else key): value
                                                 for key, value in body.items()}]
        with es_errors("search"):
            responses = self.client.msearch(searches=searches)["responses"]
        out = []
        for (vector, q, _), want, res in zip(prepared, wants, responses, strict=True):
            if "error" in res:
                raise IndexUnavailable(f"Elasticsearch: search: {res['error']}")
            hits, exhausted = self._parse(res, want)
            if len(hits) < q.k and not exhausted and want < MAX_KNN:
                hits = self.search(vector, q.k, q.filters, exclude, collapse)
            out.append(hits[: q.k])
        return out

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- internals ------------------------------------------------------
    def _query_vector(self, vector: np.ndarray) -> np.ndarray:
        """The normalised query, checked against the live index's vector size."""
        query = normalise(vector).reshape(-1)
        held = self._current_dims()
        if held is not None and len(query) != held:
            self._dims = None  # the alias may have moved to a new model's index since we looked
            held = self._current_dims()
            if held is not None and len(query) != held:
                raise IndexUnavailable(f"query is {len(query)}-d; the index holds {held}-d")
        return query

    def _knn(
        self, query: np.ndarray, size: int, k: int, knn_filter: dict[str, Any], collapse: bool
    ) -> tuple[list[Hit], bool]:
        body = self._knn_body(query, size, k, knn_filter, collapse)
        with es_errors("search"):
            res = self.client.search(index=self.name, **body)
        return self._parse(res, k)

    def _knn_body(
        self, query: np.ndarray, size: int, k: int, knn_filter: dict[str, Any], collapse: bool
    ) -> dict[str, Any]:
        """The keyword arguments of ``client.search`` for one filtered kNN."""
        knn: dict[str, Any] = {
            "field": VECTOR_FIELD,
            "query_vector": query.tolist(),
            "k": k,
            "num_candidates": min(MAX_KNN, max(self.num_candidates, k)),
            "filter": knn_filter,
        }
        if self.min_similarity is not None:
            knn["similarity"] = self.min_similarity
        if self.rescore_oversample and self.rescore_oversample >= 1:
            knn["rescore_vector"] = {"oversample": self.rescore_oversample}
        body: dict[str, Any] = {"knn": knn, "size": size, "source": {"exclude_vectors": False}}
        if collapse:
            body["collapse"] = {"field": "product_id"}
        return body

    @staticmethod
    def _parse(res: Any, k: int) -> tuple[list[Hit], bool]:
        """Hits (scores back on the cosine scale) and whether fewer than the kNN's k matched."""
        total = res["hits"]["total"]["value"]
        hits = [
            Hit(item=item_of_source(h["_source"]), score=float(2.0 * h["_score"] - 1.0))
            for h in res["hits"]["hits"]
        ]
        return hits, total < k

    def _bulk(self, actions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Index ``actions`` in ``bulk_threads`` interleaved streams of ``bulk_chunk``-document
        requests (each retried on 429); the failed documents' errors."""
        pending = list(actions)
        streams = max(1, min(self.bulk_threads, -(-len(pending) // self.bulk_chunk)))

        def stream(part: list[dict[str, Any]]) -> list[dict[str, Any]]:
            failures = []
            for ok, info in helpers.streaming_bulk(
                self.client, part, chunk_size=self.bulk_chunk, max_chunk_bytes=20 * 1024 * 1024,
                max_retries=8, initial_backoff=1, max_backoff=30, retry_on_status=(429,),
                raise_on_error=False, yield_ok=False,
            ):
                if not ok:
                    failures.append(info)
            return failures

        with es_errors("bulk index"):
            if streams == 1:
                return stream(pending)
            # contiguous chunk-sized runs dealt round robin: each stream sends whole requests
            runs = [pending[i:i + self.bulk_chunk] for i in range(0, len(pending), self.bulk_chunk)]
            parts = [[a for run in runs[n::streams] for a in run] for n in range(streams)]
            with ThreadPoolExecutor(streams, thread_name_prefix="es-bulk") as pool:
                return [f for failures in pool.map(stream, parts) for f in failures]

    def _refresh(self) -> None:
        if self._exists():
            with es_errors("refresh"):
                self.client.indices.refresh(index=self.name)

    def _exists(self) -> bool:
        if self._dims is not None:
            return True
        with es_errors("check the index"):
            return bool(self.client.indices.exists(index=self.name))

    def _alias_targets(self) -> list[str]:
        with es_errors("read alias"):
            try:
                return sorted(self.client.indices.get_alias(name=self.alias))
            except NotFoundError:
                return []

    def _current_dims(self) -> int | None:
        """The vector size of the live index (cached: a version's mapping never changes)."""
        if self._dims is None:
            try:
                found = self.client.indices.get_mapping(index=self.name)
            except NotFoundError:
                return None
            except (TransportError, ApiError) as exc:
                raise IndexUnavailable(f"Elasticsearch: read mapping: {exc}") from exc
            for body in found.values():
                props = body["mappings"].get("properties", {})
                if VECTOR_FIELD in props:
                    self._dims = int(props[VECTOR_FIELD]["dims"])
        return self._dims


def _filter_query(filters: Filters, exclude_ids: Sequence[str] = ()) -> dict[str, Any]:
    """AND across fields (one ``terms`` each), any-of within a field (the ``terms`` list)."""
    clauses = [{"terms": {name: list(values)}} for name, values in filters.as_dict().items()]
    query: dict[str, Any] = {"filter": clauses}
    if exclude_ids:
        query["must_not"] = [{"ids": {"values": list(exclude_ids)}}]
    if not clauses and not exclude_ids:
        return {"match_all": {}}
    return {"bool": query}


