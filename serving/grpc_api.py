"""Eyepic's gRPC API (``eyepic.v1.Recommender``): a thin adapter over the Analyzer and Index.

``eyepic serve-grpc`` runs it beside the Flask app in one process, with the
very same Analyzer and Index objects (one model client, one open index), so
both APIs give the same answers and share the model connection and metrics.

Validation mirrors the web API's (same vocabulary, same k range, same box
rule) and every bad field is named in one INVALID_ARGUMENT message. Errors:
INVALID_ARGUMENT (bad image, filter, k, box, garment), NOT_FOUND (unknown
item), UNAVAILABLE (model server or index down: retry later).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent import futures
from typing import Any
from urllib.parse import quote

import grpc

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.imaging import ImageError, validate_box
from eyepic.schema import Box, Filters, Hit, Item
from eyepic.v1 import recommender_pb2 as pb
from eyepic.v1 import recommender_pb2_grpc
from indexer.base import IndexError_
from serving.model_client import ModelUnavailable

VOCABULARY: Mapping[str, tuple[str, ...]] = {
    "group": taxonomy.GROUP_NAMES,
    "type": taxonomy.TYPE_NAMES,
    "color": COLOR_NAMES,
}


class InvalidRequest(ValueError):
    """One or more request fields are invalid; the message names each."""


def parse_filters(message: Any, problems: list[str]) -> Filters:
    chosen: dict[str, tuple[str, ...]] = {}
    for name, vocabulary in VOCABULARY.items():
        given = list(dict.fromkeys(v.strip().lower() for v in getattr(message, name) if v.strip()))
        unknown = [v for v in given if v not in vocabulary]
        if unknown:
            problems.append(f"filters.{name}: unknown {', '.join(map(repr, unknown))}; "
                            f"one of {', '.join(vocabulary)}")
        chosen[name] = tuple(v for v in given if v in vocabulary)
    chosen["shop"] = tuple(dict.fromkeys(v.strip() for v in message.shop if v.strip()))
    return Filters(**chosen)


def parse_k(k: int, default_k: int, max_k: int, problems: list[str]) -> int:
    if k == 0:
        return default_k
    if not 1 <= k <= max_k:
        problems.append(f"k: must be from 1 to {max_k} (0 for the default {default_k}), not {k}")
    return k


def item_message(item: Item, score: float | None = None) -> Any:
    public = item.public()
    message = pb.Item(
        id=item.id, product_id=public["product_id"], group=item.group, type=item.type, color=item.color,
        title=item.title, url=item.url, shop=item.shop, brand=item.brand, attributes=list(item.attributes),
        image_path=f"/api/v1/items/{quote(item.id, safe='/')}/image",
    )
    if score is not None:
        message.score = float(score)
    if item.price is not None:
        message.price = float(item.price)
    return message


def filters_message(filters: Filters) -> Any:
    return pb.Filters(group=filters.group, type=filters.type, color=filters.color, shop=filters.shop)


def hits_messages(hits: Sequence[Hit]) -> list[Any]:
    return [item_message(hit.item, hit.score) for hit in hits]


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    """``eyepic.v1.Recommender`` over an Analyzer and an Index (shared with the web app)."""

    def __init__(self, settings: Any, analyzer: Any, index: Any):
        self.settings = settings
        self.analyzer = analyzer
        self.index = index

    def Search(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC names)
        try:
            return self._search(request)
        except (InvalidRequest, ImageError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (ModelUnavailable, IndexError_) as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def SimilarItems(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            return self._similar(request, context)
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except IndexError_ as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def _search(self, request: Any) -> Any:
        settings = self.settings
        problems: list[str] = []
        if not request.image:
            problems.append("image: missing: send the photo's encoded bytes")
        elif len(request.image) > settings.max_upload_bytes:
            problems.append(f"image: larger than the limit of {settings.max_upload_bytes} bytes")
        k = parse_k(request.k, settings.default_k, settings.max_k, problems)
        user_filters = parse_filters(request.filters, problems)
        box: Box | None = None
        if request.HasField("box"):
            try:
                b = request.box
                box = validate_box((b.x0, b.y0, b.x1, b.y1))
            except ValueError as exc:
                problems.append(f"box: {exc}")
        chosen = request.garment if request.HasField("garment") else None
        if chosen is not None and chosen < 0:
            problems.append(f"garment: must be 0 or more, not {chosen}")
        if chosen is not None and request.HasField("box"):
            problems.append("garment: give either 'garment' or 'box', not both")
        if problems:
            raise InvalidRequest("; ".join(problems))

        analysis = self.analyzer.analyze(request.image, box=box)
        indices = list(range(len(analysis.garments)))
        if chosen is not None:
            if chosen >= len(analysis.garments):
                raise InvalidRequest(f"garment: the photo has {len(analysis.garments)} garment(s); "
                                     f"use an index from 0 to {len(analysis.garments) - 1}, not {chosen}")
            indices = [chosen]
        response = pb.SearchResponse(width=analysis.width, height=analysis.height,
                                     detector_used=analysis.detector_used,
                                     model_version=self.analyzer.model_version)
        for i in indices:
            garment = analysis.garments[i]
            filters = user_filters.for_garment(garment.group)
            hits = self.index.search(garment.embedding, k, filters)
            x0, y0, x1, y1 = garment.box
            response.garments.append(pb.Garment(
                index=i, box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1), group=garment.group, type=garment.type,
                color=garment.color, scores={k_: float(v) for k_, v in garment.scores.items()},
                detected=garment.detected, filters=filters_message(filters), items=hits_messages(hits),
            ))
        return response

    def _similar(self, request: Any, context: grpc.ServicerContext) -> Any:
        problems: list[str] = []
        if not request.item_id:
            problems.append("item_id: missing")
        k = parse_k(request.k, self.settings.default_k, self.settings.max_k, problems)
        user_filters = parse_filters(request.filters, problems)
        if problems:
            raise InvalidRequest("; ".join(problems))
        item = self.index.get(request.item_id)
        if item is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"the catalog has no item with id {request.item_id!r}")
        filters = user_filters.for_garment(item.group)
        hits = self.index.search(item.embedding, k, filters, exclude_ids=[item.id])
        return pb.SimilarItemsResponse(item=item_message(item), filters=filters_message(filters),
                                       items=hits_messages(hits))


def build_grpc_server(settings: Any, analyzer: Any, index: Any, metrics: Any | None = None,
                      address: str | None = None) -> tuple[grpc.Server, int]:
    """A (not yet started) server for the Recommender API; returns it and its bound port."""
    interceptors = []
    if metrics is not None:
        from serving.metrics import grpc_interceptor

        interceptors.append(grpc_interceptor(metrics))
    limit = settings.max_upload_bytes + 64 * 1024
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="eyepic-grpc"),
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    recommender_pb2_grpc.add_RecommenderServicer_to_server(RecommenderService(settings, analyzer, index), server)
    address = address or f"{settings.host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC API to {address}")
    return server, port
