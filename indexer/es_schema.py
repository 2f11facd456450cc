"""What the Elasticsearch backend stores: the mapping, index settings, documents and client errors.

Shared by the index (``indexer.elasticsearch``) and its alias versioning
(``indexer.es_versions``). Mapping as data: vectors are L2-normalised
before they are sent, so ``dot_product`` similarity equals cosine and is
the cheapest; ``int8_hnsw`` quarters vector memory, and ``rescore_vector``
re-ranks the quantised candidates on the float vectors so scores are exact
cosines.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
from elastic_transport import TransportError
from elasticsearch import ApiError, helpers

from eyepic.schema import Item
from indexer.base import IndexUnavailable
from indexer.documents import item_document, item_from_document

VECTOR_FIELD = "embedding"
FILTER_FIELDS = ("group", "type", "color", "shop")  # Filters' fields, same names in the mapping


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


@contextlib.contextmanager
def es_errors(what: str) -> Iterator[None]:
    """Turn client errors into IndexUnavailable, the one error the app handles (503)."""
    try:
        yield
    except IndexUnavailable:
        raise
    except (TransportError, ApiError, helpers.BulkIndexError) as exc:
        raise IndexUnavailable(f"Elasticsearch: {what}: {exc}") from exc


def slug(text: str) -> str:
    """Index names must be lower case without ``\\/*?"<>| ,#:``."""
    return re.sub(r"[^a-z0-9_.+-]+", "-", text.lower()).strip("-_.+")


def item_source(item: Item, vector: np.ndarray, indexed_at: str) -> dict[str, Any]:
    return {
        **item_document(item),
        # 7 decimals: a quarter of the JSON of float32's shortest-repr doubles, error < 1e-6.
        "indexed_at": indexed_at, VECTOR_FIELD: np.round(vector.astype(np.float64), 7).tolist(),
    }


def item_of_source(source: dict[str, Any]) -> Item:
    return item_from_document(source, source.get(VECTOR_FIELD))
