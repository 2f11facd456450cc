"""The search and similar-items use cases, written once for the web and gRPC APIs.

``SearchService`` validates raw request fields (``services.requests``),
analyzes the photo, applies each garment's filters and queries the index;
the Flask blueprints and ``eyepic.v1.Recommender`` only translate their
transport to and from it. Errors: ``InvalidRequest`` (bad fields),
``ItemNotFound``, and, passed through, ``ImageError`` (not an image),
``ModelUnavailable`` and ``IndexUnavailable`` (retry later).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from eyepic.schema import Box, Filters, Garment, Hit, Item
from eyepic.settings import Settings
from indexer.base import Index, KnnQuery
from services.requests import (
    InvalidRequest,
    ItemNotFound,
    SearchQuery,
    SimilarQuery,
    garment_indices,
    search_query,
    similar_query,
)
from serving.analyzer import Analysis


class AnalyzerLike(Protocol):
    """The part of ``serving.analyzer.Analyzer`` the use cases need."""

    @property
    def model_version(self) -> str: ...

    def ready(self) -> bool: ...

    def analyze(self, data: bytes, box: Box | None = None) -> Analysis: ...


@dataclasses.dataclass(frozen=True)
class GarmentHits:
    """One garment of the photo (``index`` into all found) and the items like it."""

    index: int
    garment: Garment
    filters: Filters
    hits: list[Hit]


@dataclasses.dataclass(frozen=True)
class SearchResult:
    query: SearchQuery
    garments: list[GarmentHits]
    width: int
    height: int
    detector_used: bool
    model_version: str


@dataclasses.dataclass(frozen=True)
class SimilarResult:
    item: Item
    filters: Filters
    hits: list[Hit]


class SearchService:
    """Photo search and "more like this" over one Analyzer and one Index (shared by both APIs)."""

    def __init__(self, settings: Settings, analyzer: AnalyzerLike, index: Index):
        self.settings = settings
        self.analyzer = analyzer
        self.index = index

    def search_query(self, *, image: bytes | None, k: str | int | None, filters: Mapping[str, Iterable[str]],
                     box: str | Sequence[float | str] | None = None,
                     garment: str | int | None = None) -> SearchQuery:
        """Validate a photo search against this deployment's limits (InvalidRequest names every bad field)."""
        s = self.settings
        return search_query(image=image, k=k, filters=filters, box=box, garment=garment, default_k=s.default_k,
                            max_k=s.max_k, max_image_bytes=s.max_upload_bytes)

    def similar_query(self, *, item_id: str, k: str | int | None,
                      filters: Mapping[str, Iterable[str]]) -> SimilarQuery:
        return similar_query(item_id=item_id, k=k, filters=filters, default_k=self.settings.default_k,
                             max_k=self.settings.max_k)

    def search(self, query: SearchQuery) -> SearchResult:
        """Analyze the photo, then search the index for each garment (or the chosen one).

        Each garment finds items of its own group unless the query names a
        group or type (``Filters.for_garment``).
        """
        analysis = self.analyzer.analyze(query.image, box=query.box)
        chosen = [(i, analysis.garments[i], query.filters.for_garment(analysis.garments[i].group))
                  for i in garment_indices(len(analysis.garments), query.garment)]
        # every garment's kNN in one call: one _msearch round trip on Elasticsearch
        hits = self.index.search_many([KnnQuery(g.embedding, query.k, f) for _, g, f in chosen])
        garments = [GarmentHits(i, g, f, h) for (i, g, f), h in zip(chosen, hits, strict=True)]
        return SearchResult(query=query, garments=garments, width=analysis.width, height=analysis.height,
                            detector_used=analysis.detector_used, model_version=self.analyzer.model_version)

    def item(self, item_id: str) -> Item:
        """The catalog item, or ItemNotFound."""
        item = self.index.get(item_id)
        if item is None:
            raise ItemNotFound(item_id)
        return item

    def similar(self, query: SimilarQuery) -> SimilarResult:
        """Items nearest to this item's own vector, the item itself left out; same filter
        defaults as search (the item's own group unless a group or type is given)."""
        item = self.item(query.item_id)
        filters = query.filters.for_garment(item.group)
        hits = self.index.search(item.embedding, query.k, filters, exclude_ids=[item.id])
        return SimilarResult(item=item, filters=filters, hits=hits)


__all__ = ["AnalyzerLike", "GarmentHits", "InvalidRequest", "ItemNotFound", "SearchResult", "SearchService",
           "SimilarResult"]
