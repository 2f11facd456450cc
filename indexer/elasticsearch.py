"""The Elasticsearch index backend: HNSW kNN with attribute pre-filters.

Why this shape:

* Versioned indices behind one alias. Documents live in
  ``<alias>-<model_version>-<timestamp>``; readers always go through the alias
  (``settings.index_name``). A new model reindexes into a fresh index
  (``create_version`` + ``using(name)``) and ``swap_alias`` moves the alias in
  one atomic ``_aliases`` call, so searches never see a half-built index.
* Mapping as data (:func:`mapping`): vectors are L2-normalised before they are
  sent, so ``dot_product`` similarity equals cosine and is the cheapest;
  ``int8_hnsw`` quarters vector memory, and ``rescore_vector`` re-ranks the
  quantised candidates on the float vectors so scores are exact cosines.
* Filters sit *inside* the ``knn`` clause: a pre-filter, so k hits come back
  whenever k documents match (a post-filter would return short pages).
  Collapse by ``product_id`` happens after kNN, so the kNN ``k`` is widened
  until k distinct products come back or the matching documents run out.
* Bulk writes use ``helpers.streaming_bulk`` with retries on 429; big loads
  switch ``refresh_interval`` off and restore it after. Ids are the item ids,
  so re-running a crashed load converges on exactly the catalog.

Scores: Elasticsearch reports ``(1 + dot) / 2`` for ``dot_product``; hits are
converted back to cosine so both backends speak the same scale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError, helpers

from eyepic.schema import Filters, Hit, Item
from indexer.base import IndexError_, normalise

VECTOR_FIELD = "embedding"
FILTER_FIELDS = ("group", "type", "color", "shop")  # Filters' fields, same names in the mapping
FACET_SIZE = 1000
MAX_KNN = 10_000  # Elasticsearch's ceiling for k and num_candidates
BULK_REFRESH_OFF_AT = 1000  # an upsert this large turns refresh off while it runs
NO_FILTERS = Filters()


def mapping(dims: int, *, m: int = 16, ef_construction: int = 100, model_version: str = "") -> dict[str, Any]:
    """The index mapping. Strict, so a typo in a document fails loudly."""
    return {
        "dynamic": "strict",
        "_meta": {"model_version": model_version, "dims": dims, "schema": 1},
        "properties": {
            "id": {"type": "keyword"},
            "product_id": {"type": "keyword"},
            "group": {"type": "keyword"},
            "type": {"type": "keyword"},
            "color": {"type": "keyword"},
            "attributes": {"type": "keyword"},
            "shop": {"type": "keyword"},
            "brand": {"type": "keyword"},
            "model_version": {"type": "keyword"},
            "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
            "price": {"type": "float"},
            "indexed_at": {"type": "date"},
            # Stored in _source for display, never searched: no index, no doc values.
            "image_path": {"type": "keyword", "index": False, "doc_values": False},
            "url": {"type": "keyword", "index": False, "doc_values": False},
            VECTOR_FIELD: {
                "type": "dense_vector",
                "dims": dims,
                "element_type": "float",
                "index": True,
                "similarity": "dot_product",
                "index_options": {"type": "int8_hnsw", "m": m, "ef_construction": ef_construction},
            },
        },
    }


def index_settings(replicas: int = 0) -> dict[str, Any]:
    return {"number_of_shards": 1, "number_of_replicas": replicas}


def embedding_dim_from_metadata(model_dir: Path, name: str) -> int | None:
    """The embedding size the newest export of ``name`` declares, if any."""
    base = Path(model_dir) / name
    versions = sorted(int(p.name) for p in base.glob("*") if p.name.isdigit())
    for version in reversed(versions):
        meta = base / str(version) / "metadata.json"
        if meta.exists():
            raw = json.loads(meta.read_text())
            for key in ("embedding_dim", "embedding_dims", "embedding_size"):
                if key in raw:
                    return int(raw[key])
    return None


class ElasticsearchIndex:
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
        self._dims: int | None = None
        self._bulk_depth = 0

    @classmethod
    def from_settings(cls, settings: Any) -> ElasticsearchIndex:
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
            dims_hint=embedding_dim_from_metadata(settings.model_dir, settings.classifier_name),
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
        with _errors("read the node version"):
            nodes = self.client.nodes.info(node_id="_local", metric="_none", filter_path="nodes.*.version")
        return next(iter(nodes["nodes"].values()))["version"]

    # -- versions -------------------------------------------------------
    def create_version(self, model_version: str, dims: int | None = None) -> str:
        """Create an empty ``<alias>-<model_version>-<timestamp>`` index; return its name."""
        dims = dims or self._current_dims() or self.dims_hint
        if not dims:
            raise IndexError_("cannot create an index without the embedding size (pass dims)")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
        name = f"{self.alias}-{_slug(model_version) or 'unversioned'}-{stamp}"
        with _errors(f"create index {name}"):
            self.client.indices.create(
                index=name,
                mappings=mapping(dims, m=self.m, ef_construction=self.ef_construction,
                                 model_version=model_version),
                settings=index_settings(self.replicas),
                wait_for_active_shards="1",
            )
        return name

    def swap_alias(self, index_name: str) -> list[str]:
        """Point the alias at ``index_name`` alone, atomically; return the indices it left."""
        with _errors(f"move alias {self.alias}"):
            if self.client.indices.exists(index=self.alias) and not self.client.indices.exists_alias(
                name=self.alias
            ):
                raise IndexError_(f"{self.alias!r} is a concrete index, not an alias; delete it first")
            previous = self._alias_targets()
            actions: list[dict[str, Any]] = [
                {"remove": {"index": old, "alias": self.alias}} for old in previous if old != index_name
            ]
            actions.append({"add": {"index": index_name, "alias": self.alias, "is_write_index": True}})
            self.client.indices.update_aliases(actions=actions)
        self._dims = None
        return [old for old in previous if old != index_name]

    def versions(self) -> list[str]:
        """All versioned indices of this alias, oldest first."""
        with _errors("list versions"):
            found = self.client.indices.get(
                index=f"{self.alias}-*", expand_wildcards="open", allow_no_indices=True,
                filter_path="*.settings.index.provided_name",
            )
        pattern = re.compile(rf"{re.escape(self.alias)}-[a-z0-9_.+-]*-\d{{20}}")
        return sorted(name for name in found if pattern.fullmatch(name))

    def current_version(self) -> str | None:
        targets = self._alias_targets()
        return targets[0] if targets else None

    def drop_version(self, index_name: str) -> None:
        """Delete an old version; refuses the one the alias points at."""
        if index_name in self._alias_targets():
            raise IndexError_(f"{index_name} is live behind {self.alias}; swap first")
        with _errors(f"delete {index_name}"):
            self.client.options(ignore_status=404).indices.delete(index=index_name)

    def drop_all(self) -> None:
        """Delete the alias and every version (tests, ``eyepic index --rebuild``)."""
        with _errors("delete all versions"):
            names = self.versions()
            if names:
                self.client.options(ignore_status=404).indices.delete(index=",".join(names))
        self._dims = None

    def using(self, index_name: str) -> ElasticsearchIndex:
        """A view that reads and writes one concrete index (to fill it before a swap)."""
        view = ElasticsearchIndex(
            self.client, self.alias, name=index_name, num_candidates=self.num_candidates, m=self.m,
            ef_construction=self.ef_construction, min_similarity=self.min_similarity,
            rescore_oversample=self.rescore_oversample, replicas=self.replicas,
            dims_hint=self.dims_hint, owns_client=False,
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
        with _errors("read refresh_interval"):
            concrete = self.client.indices.get_settings(index=self.name)
        # None (unset) restores the default of 1 s.
        before = {idx: body["settings"]["index"].get("refresh_interval") for idx, body in concrete.items()}
        with _errors("turn refresh off"):
            self.client.indices.put_settings(index=self.name, settings={"index": {"refresh_interval": "-1"}})
        self._bulk_depth += 1
        try:
            yield self
        finally:
            self._bulk_depth -= 1
            with _errors("restore refresh_interval"):
                for idx, value in before.items():
                    self.client.indices.put_settings(
                        index=idx, settings={"index": {"refresh_interval": value}}
                    )
            self._refresh()

    # -- writes ---------------------------------------------------------
    def upsert(self, items: Sequence[Item]) -> None:
        if not items:
            return
        vectors = [normalise(item.embedding).reshape(-1) for item in items]
        dims = {len(v) for v in vectors}
        if len(dims) != 1:
            raise IndexError_(f"items have vectors of different sizes: {sorted(dims)}")
        dim = dims.pop()
        if not self._exists():
            if self.name != self.alias:
                raise IndexError_(f"index {self.name} does not exist")
            self.swap_alias(self.create_version(items[0].model_version, dim))
        held = self._current_dims()
        if held is not None and held != dim:
            raise IndexError_(f"items have {dim}-d vectors; the index holds {held}-d")
        for item, vector in zip(items, vectors, strict=True):
            if not np.isfinite(vector).all() or not vector.any():
                raise IndexError_(f"item {item.id!r} has a zero or non-finite vector")
        now = dt.datetime.now(dt.UTC).isoformat()
        actions = (
            {"_op_type": "index", "_index": self.name, "_id": item.id, "_source": _doc(item, vector, now)}
            for item, vector in zip(items, vectors, strict=True)
        )
        load = self.bulk_load() if len(items) >= BULK_REFRESH_OFF_AT and not self._bulk_depth else None
        with load or contextlib.nullcontext():
            failures = self._bulk(actions)
            if failures:
                raise IndexError_(f"{len(failures)} of {len(items)} documents failed, e.g. {failures[0]}")
            if not self._bulk_depth:
                self._refresh()

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(ids))
        if not ids or not self._exists():
            return 0
        deleted = 0
        with _errors("delete"):
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
                    raise IndexError_(f"delete failed: {result}")
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
            raise IndexError_(f"Elasticsearch: get {item_id!r}: {exc}") from exc
        return _item(doc["_source"])

    def ids(self) -> set[str]:
        if not self._exists():
            return set()
        with _errors("list ids"):
            return {
                hit["_id"]
                for hit in helpers.scan(self.client, index=self.name, query={"query": {"match_all": {}}},
                                        _source=False, size=5000, preserve_order=False)
            }

    def count(self, filters: Filters = NO_FILTERS) -> int:
        if not self._exists():
            return 0
        with _errors("count"):
            return int(self.client.count(index=self.name, query=_filter_query(filters))["count"])

    def facets(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {name: {} for name in FILTER_FIELDS}
        if not self._exists():
            return out
        with _errors("facets"):
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
        query = normalise(vector).reshape(-1)
        held = self._current_dims()
        if held is not None and len(query) != held:
            self._dims = None  # the alias may have moved to a new model's index since we looked
            held = self._current_dims()
            if held is not None and len(query) != held:
                raise IndexError_(f"query is {len(query)}-d; the index holds {held}-d")
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

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- internals ------------------------------------------------------
    def _knn(
        self, query: np.ndarray, size: int, k: int, knn_filter: dict[str, Any], collapse: bool
    ) -> tuple[list[Hit], bool]:
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
        with _errors("search"):
            res = self.client.search(index=self.name, **body)
        total = res["hits"]["total"]["value"]
        hits = [
            Hit(item=_item(h["_source"]), score=float(2.0 * h["_score"] - 1.0))
            for h in res["hits"]["hits"]
        ]
        return hits, total < k

    def _bulk(self, actions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        failures: list[dict[str, Any]] = []
        with _errors("bulk index"):
            for ok, info in helpers.streaming_bulk(
                self.client, actions, chunk_size=500, max_chunk_bytes=20 * 1024 * 1024,
                max_retries=8, initial_backoff=1, max_backoff=30, retry_on_status=(429,),
                raise_on_error=False, yield_ok=False,
            ):
                if not ok:
                    failures.append(info)
        return failures

    def _refresh(self) -> None:
        if self._exists():
            with _errors("refresh"):
                self.client.indices.refresh(index=self.name)

    def _exists(self) -> bool:
        if self._dims is not None:
            return True
        with _errors("check the index"):
            return bool(self.client.indices.exists(index=self.name))

    def _alias_targets(self) -> list[str]:
        with _errors("read alias"):
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
                raise IndexError_(f"Elasticsearch: read mapping: {exc}") from exc
            for body in found.values():
                props = body["mappings"].get("properties", {})
                if VECTOR_FIELD in props:
                    self._dims = int(props[VECTOR_FIELD]["dims"])
        return self._dims


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """Turn client errors into IndexError_, the one error the app handles (503)."""
    try:
        yield
    except IndexError_:
        raise
    except (TransportError, ApiError, helpers.BulkIndexError) as exc:
        raise IndexError_(f"Elasticsearch: {what}: {exc}") from exc


def _slug(text: str) -> str:
    """Index names must be lower case without ``\\/*?"<>| ,#:``."""
    return re.sub(r"[^a-z0-9_.+-]+", "-", text.lower()).strip("-_.+")


def _filter_query(filters: Filters, exclude_ids: Sequence[str] = ()) -> dict[str, Any]:
    """AND across fields (one ``terms`` each), any-of within a field (the ``terms`` list)."""
    clauses = [{"terms": {name: list(values)}} for name, values in filters.as_dict().items()]
    query: dict[str, Any] = {"filter": clauses}
    if exclude_ids:
        query["must_not"] = [{"ids": {"values": list(exclude_ids)}}]
    if not clauses and not exclude_ids:
        return {"match_all": {}}
    return {"bool": query}


def _doc(item: Item, vector: np.ndarray, indexed_at: str) -> dict[str, Any]:
    return {
        "id": item.id, "product_id": item.product_id, "group": item.group, "type": item.type,
        "color": item.color, "title": item.title, "image_path": item.image_path, "url": item.url,
        "price": item.price, "shop": item.shop, "brand": item.brand,
        "attributes": list(item.attributes), "model_version": item.model_version,
        # 7 decimals: a quarter of the JSON of float32's shortest-repr doubles, error < 1e-6.
        "indexed_at": indexed_at, VECTOR_FIELD: np.round(vector.astype(np.float64), 7).tolist(),
    }


def _item(source: dict[str, Any]) -> Item:
    vector = source.get(VECTOR_FIELD)
    return Item(
        id=source["id"],
        embedding=np.asarray(vector if vector is not None else [], dtype=np.float32),
        group=source.get("group", ""),
        type=source.get("type", ""),
        color=source.get("color", ""),
        title=source.get("title", ""),
        image_path=source.get("image_path", ""),
        product_id=source.get("product_id", ""),
        url=source.get("url", ""),
        price=source.get("price"),
        shop=source.get("shop", ""),
        brand=source.get("brand", ""),
        attributes=tuple(source.get("attributes") or ()),
        model_version=source.get("model_version", ""),
    )
