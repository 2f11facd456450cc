"""The Index interface every backend implements (embedded, Elasticsearch).

Semantics shared by all backends, checked by one conformance suite:

* ``upsert`` is idempotent by item id; ``delete`` of a missing id is a no-op.
* ``search`` is a *pre-filtered* exact or approximate kNN: when at least k
  items match the filters, k hits come back. With ``collapse`` (default) at
  most one hit per ``product_id`` is returned, the best-scoring photo.
* Scores are cosine similarities of L2-normalised vectors, higher is closer.
* ``search_many`` answers several kNN queries (each its own vector, k and
  filters; one exclusion list) exactly as that many ``search`` calls would,
  in as few round trips as the engine allows (Elasticsearch: one ``_msearch``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np

from eyepic.schema import Filters, Hit, Item


class IndexUnavailable(RuntimeError):
    """The index cannot answer: its backend is down, or it refuses the request (a vector of
    another size than the index holds). The APIs answer 503, like ``ModelUnavailable``."""


class IndexBusy(IndexUnavailable):
    """Another writer (a second ``eyepic index``) holds the index's writer lock; try again later."""
@dataclasses.dataclass(frozen=True)
class KnnQuery:
    """One query of ``Index.search_many``."""

    vector: np.ndarray
    k: int
    filters: Filters = Filters()


class Index(Protocol):
    def upsert(self, items: Sequence[Item]) -> None: ...

    def delete(self, ids: Iterable[str]) -> int: ...

    def get(self, item_id: str) -> Item | None: ...

    def search(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters = Filters(),
        exclude_ids: Iterable[str] = (),
        collapse: bool = True,
    ) -> list[Hit]: ...

    def search_many(self, queries: Sequence[KnnQuery], exclude_ids: Iterable[str] = (),
                    collapse: bool = True) -> list[list[Hit]]:
        """One hit list per query, as ``search`` would give each."""
        ...

    def count(self, filters: Filters = Filters()) -> int: ...

    def ids(self) -> set[str]: ...

    def facets(self) -> dict[str, dict[str, int]]:
        """Item counts per value of group, type and color (for filter chips)."""
        ...

    def writer(self, model_version: str, lock_stale_s: float) -> AbstractContextManager[Index]:
        """The index one indexing job writes into, held under the backend's writer lock
        (``IndexBusy`` when another job holds it)."""
        ...

    def close(self) -> None: ...


def normalise(vector: np.ndarray) -> np.ndarray:
    """L2-normalise a vector (or rows of a matrix) as float32."""
    v = np.asarray(vector, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)
