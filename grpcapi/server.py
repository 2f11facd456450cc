"""Eyepic's gRPC API (``eyepic.v1.Recommender``): a thin adapter over ``services.search``
and ``services.recommend``.

``eyepic serve-grpc`` runs it beside the Flask app in one process, with the
very same Analyzer and Index objects (one model client, one open index), so
both APIs give the same answers and share the model connection and metrics.

Validation is the web API's own (``services.requests``): the same
vocabulary, k range, box rule and filters, every bad field named in one
INVALID_ARGUMENT message (filter fields as ``filters.<name>``). Errors:
INVALID_ARGUMENT (bad image, filter, k, box, garment, or bytes that are not
the request message), NOT_FOUND (unknown item), UNAVAILABLE (model server or
index down: retry later), RESOURCE_EXHAUSTED (a message over the upload
limit, refused by gRPC itself).

The same server answers the standard health service and server reflection
(``grpcapi.health``) for probes and generic clients such as ``grpcurl``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any
from urllib.parse import quote

import grpc
from google.protobuf.message import DecodeError

from eyepic.exports import ModelUnavailable
from eyepic.imaging import ImageError
from eyepic.schema import Filters, Hit, Item
from eyepic.settings import Settings
from eyepic.v1 import recommender_pb2 as pb
from eyepic.v1 import recommender_pb2_grpc
from grpcapi.health import DEFAULT_INTERVAL_S, add_health_and_reflection
from indexer.base import Index, IndexUnavailable
from services.metrics import Metrics
from services.recommend import RecommendResult, RecommendService
from services.requests import FILTER_FIELDS, InvalidRequest, ItemNotFound
from services.search import AnalyzerLike, SearchResult, SearchService, SimilarResult
from taste.events import EventStore, MemoryEventStore


def filter_fields(message: pb.Filters) -> dict[str, list[str]]:
    """The raw filter fields of a ``Filters`` message, for the validator."""
    return {name: list(getattr(message, name)) for name in FILTER_FIELDS}


def invalid_message(exc: InvalidRequest) -> str:
    """Every bad field, named as in the proto (``filters.color``, ``k``...)."""
    return "; ".join(f"{'filters.' if p.name in FILTER_FIELDS else ''}{p.name}: {p.reason}" for p in exc.problems)


def item_message(item: Item, score: float | None = None) -> pb.Item:
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


def filters_message(filters: Filters) -> pb.Filters:
    return pb.Filters(group=filters.group, type=filters.type, color=filters.color, shop=filters.shop)


def hits_messages(hits: Sequence[Hit]) -> list[pb.Item]:
    return [item_message(hit.item, hit.score) for hit in hits]


def search_response(result: SearchResult) -> pb.SearchResponse:
    response = pb.SearchResponse(width=result.width, height=result.height, detector_used=result.detector_used,
                                 model_version=result.model_version)
    for found in result.garments:
        garment = found.garment
        x0, y0, x1, y1 = garment.box
        response.garments.append(pb.Garment(
            index=found.index, box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1), group=garment.group, type=garment.type,
            color=garment.color, scores={name: float(v) for name, v in garment.scores.items()},
            detected=garment.detected, filters=filters_message(found.filters), items=hits_messages(found.hits),
        ))
    return response


def similar_response(result: SimilarResult) -> pb.SimilarItemsResponse:
    return pb.SimilarItemsResponse(item=item_message(result.item), filters=filters_message(result.filters),
                                   items=hits_messages(result.hits))


def recommend_response(result: RecommendResult) -> pb.RecommendResponse:
    response = pb.RecommendResponse(user_id=result.query.user_id, personal=result.personal, note=result.note,
                                    filters=filters_message(result.query.filters))
    for r in result.items:
        message = pb.Recommendation(item=item_message(r.item, r.score), reason=r.reason)
        if r.cluster is not None:
            message.cluster = r.cluster
        response.items.append(message)
    for c in result.clusters:
        response.clusters.append(pb.TasteCluster(id=int(c["id"]), importance=float(c["importance"]),  # type: ignore[arg-type]
                                                 item_id=str(c["item_id"])))
    return response


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    """``eyepic.v1.Recommender`` over the search and recommend services (shared with the web app)."""

    def __init__(self, settings: Settings, analyzer: AnalyzerLike, index: Index,
                 recommend: RecommendService | None = None):
        self.search = SearchService(settings, analyzer, index)
        self.recommend = recommend or RecommendService(settings, index, MemoryEventStore())

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:  # noqa: N802
        try:
            query, user = self.recommend.with_personalize(lambda: self.search.search_query(
                image=request.image or None, k=request.k or None, filters=filter_fields(request.filters),
                box=(request.box.x0, request.box.y0, request.box.x1, request.box.y1) if request.HasField("box")
                else None,
                garment=request.garment if request.HasField("garment") else None,
            ), request.personalize or None)
            return search_response(self.recommend.personalize_search(self.search.search(query), user))
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid_message(exc))
        except ImageError as exc:  # UnsupportedImageType too (HTTP 415): the message lists the types
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"image: {exc}")
        except (ModelUnavailable, IndexUnavailable) as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def SimilarItems(self, request: pb.SimilarItemsRequest,  # noqa: N802 (gRPC names)
                     context: grpc.ServicerContext) -> pb.SimilarItemsResponse:
        try:
            query, user = self.recommend.with_personalize(
                lambda: self.search.similar_query(item_id=request.item_id, k=request.k or None,
                                                  filters=filter_fields(request.filters)),
                request.personalize or None)
            return similar_response(self.recommend.personalize_similar(self.search.similar(query), user))
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid_message(exc))
        except ItemNotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except IndexUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


    def Recommend(self, request: pb.RecommendRequest,  # noqa: N802 (gRPC names)
                  context: grpc.ServicerContext) -> pb.RecommendResponse:
        try:
            query = self.recommend.recommend_query(user_id=request.user_id, k=request.k or None,
                                                   filters=filter_fields(request.filters))
            return recommend_response(self.recommend.recommend(query))
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid_message(exc))
        except IndexUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


def _parsed(method: Callable[[Any, grpc.ServicerContext], Any], request_type: Any) -> Callable[..., Any]:
    """``method`` taking raw bytes: a request that does not parse is INVALID_ARGUMENT.

    (gRPC's own deserializer would answer INTERNAL, the 5xx of gRPC.)
    """
    def handler(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = request_type.FromString(raw)
        except DecodeError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"request: not a valid {request_type.DESCRIPTOR.full_name} message")
        return method(request, context)

    return handler


def add_recommender(servicer: RecommenderService, server: grpc.Server) -> None:
    """Register ``eyepic.v1.Recommender`` like the generated helper, but parsing requests ourselves."""
    handlers = {
        "Search": grpc.unary_unary_rpc_method_handler(
            _parsed(servicer.Search, pb.SearchRequest), response_serializer=pb.SearchResponse.SerializeToString),
        "SimilarItems": grpc.unary_unary_rpc_method_handler(
            _parsed(servicer.SimilarItems, pb.SimilarItemsRequest),
            response_serializer=pb.SimilarItemsResponse.SerializeToString),
        "Recommend": grpc.unary_unary_rpc_method_handler(
            _parsed(servicer.Recommend, pb.RecommendRequest),
            response_serializer=pb.RecommendResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("eyepic.v1.Recommender", handlers),))


def build_grpc_server(settings: Settings, analyzer: AnalyzerLike, index: Index, metrics: Metrics | None = None,
                      address: str | None = None,
                      health_interval_s: float = DEFAULT_INTERVAL_S, events: EventStore | None = None,
                      recommend: RecommendService | None = None) -> tuple[grpc.Server, int]:
    """A (not yet started) server for the Recommender API; returns it and its bound port.

    It also answers ``grpc.health.v1.Health`` (NOT_SERVING until the model and
    the index answer, rechecked every ``health_interval_s``) and server
    reflection (``grpcapi.health``); starting and stopping the returned
    server starts and stops the health watcher. ``recommend`` (the web app's, to share its
    profile cache) or ``events`` gives ``Recommend`` the shoppers' events.
    """
    interceptors = []
    if metrics is not None:
        from grpcapi.metrics import grpc_interceptor

        interceptors.append(grpc_interceptor(metrics))
    limit = settings.max_upload_bytes + 64 * 1024
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="eyepic-grpc"),
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    if recommend is None and events is not None:
        recommend = RecommendService(settings, index, events)
    add_recommender(RecommenderService(settings, analyzer, index, recommend), server)
    server = add_health_and_reflection(server, analyzer, index, health_interval_s)
    address = address or f"{settings.host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC API to {address}")
    return server, port
