"""Eyepic's gRPC API (``eyepic.v1.Recommender``): a thin adapter over ``services.search``,
``services.recommend``.

``eyepic serve-grpc`` runs it beside the Flask app in one process, with the
very same Analyzer and Index objects (one model client, one open index), so
both APIs give the same answers and share the model connection and metrics.

Validation is the web API's own (``services.requests``): the same
vocabulary, k range, box rule and filters, every bad field named in one
INVALID_ARGUMENT message (filter fields as ``filters.<name>``). Events
(``RecordEvent``, ``ForgetUser``) go through the same ``services.events``
and ``services.access`` as the web API: credentials come in the metadata
``authorization: Bearer <c>`` or ``x-api-key``; refusals are
UNAUTHENTICATED, PERMISSION_DENIED and RESOURCE_EXHAUSTED (with trailing
metadata ``retry-after``). Errors:
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
from outfits.model import CompatibilityModel
from services.access import AccessControl, Forbidden, RateLimited, Unauthenticated, credential_of
from services.events import EventService
from services.metrics import Metrics
from services.outfits import GroupLook, LookResult, OutfitService, Reranker, load_compatibility
from services.recommend import RecommendResult, RecommendService
from services.requests import FILTER_FIELDS, InvalidRequest, ItemNotFound
from services.search import AnalyzerLike, SearchResult, SearchService, SimilarResult
from taste.events import Event, EventStore, EventStoreUnavailable


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


def look_groups(groups: Sequence[GroupLook]) -> list[pb.LookGroup]:
    return [pb.LookGroup(group=g.group, items=[pb.LookItem(item=item_message(s.item, s.score), reason=s.reason)
                                               for s in g.items]) for g in groups]


def look_response(result: LookResult) -> pb.CompleteTheLookResponse:
    response = pb.CompleteTheLookResponse(width=result.width, height=result.height,
                                          detector_used=result.detector_used, model_version=result.model_version,
                                          personalised=result.personalised, groups=look_groups(result.groups))
    if result.item is not None:
        response.item.CopyFrom(item_message(result.item))
    for found in result.garments:
        g = found.garment
        x0, y0, x1, y1 = g.box
        response.garments.append(pb.LookGarment(index=found.index, box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1),
                                                group=g.group, type=g.type, color=g.color,
                                                groups=look_groups(found.groups)))
    return response


def event_message(event: Event) -> pb.Event:
    return pb.Event(user_id=event.user_id, kind=event.kind, item_id=event.item_id, at=event.at,
                    event_id=event.event_id)


def client_address(context: grpc.ServicerContext) -> str:
    """The peer's IP from ``ipv4:1.2.3.4:5678`` / ``ipv6:[::1]:5678`` (the whole peer string otherwise)."""
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind in {"ipv4", "ipv6"} and rest:
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


def credential(context: grpc.ServicerContext) -> str | None:
    """``authorization: Bearer <c>`` or ``x-api-key: <key>`` from the call's metadata."""
    metadata = {key.lower(): value for key, value in context.invocation_metadata() or ()
                if isinstance(value, str)}
    return credential_of(metadata.get("authorization"), metadata.get("x-api-key"))


def abort_refused(context: grpc.ServicerContext, exc: Exception) -> None:
    """The gRPC status of an access refusal (rate limits carry ``retry-after`` trailing metadata)."""
    if isinstance(exc, Unauthenticated):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
    if isinstance(exc, Forbidden):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
    if isinstance(exc, RateLimited):
        context.set_trailing_metadata((("retry-after", str(exc.retry_after_s)),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    raise exc


def recommend_response(result: RecommendResult) -> pb.RecommendResponse:
    response = pb.RecommendResponse(user_id=result.query.user_id, personal=result.personal, note=result.note,
                                    filters=filters_message(result.query.filters))
    for r in result.items:
        message = pb.Recommendation(item=item_message(r.item, r.score), reason=r.reason)
        if r.cluster is not None:
            message.cluster = r.cluster
        response.items.append(message)
    for c in result.clusters:
        response.clusters.append(pb.TasteCluster(id=int(c["id"]),  # type: ignore[call-overload]
                                                 importance=float(c["importance"]),  # type: ignore[arg-type]
                                                 item_id=str(c["item_id"])))
    return response


class RecommenderService(recommender_pb2_grpc.RecommenderServicer):
    """``eyepic.v1.Recommender`` over the search and events services (shared with the web app)."""

    def __init__(self, settings: Settings, analyzer: AnalyzerLike, index: Index, events: EventStore | None = None,
                 access: AccessControl | None = None, compatibility: CompatibilityModel | None = None,
                 reranker: Reranker | None = None, recommend: RecommendService | None = None):
        """``events`` and ``access`` should be the web app's own (one store, one set of rate limits for
        both APIs); absent, they are built from settings and live as long as the process.
        ``compatibility``: complete-the-look's model (default: loaded from settings on first use);
        ``reranker``: its taste seam. ``recommend``: the web app's (one profile cache); by
        default one over ``events``."""
        if events is None:
            from taste.event_stores import open_event_store

            events = open_event_store(settings)
        self.search = SearchService(settings, analyzer, index)
        self.users = EventService(settings, index, events)
        self.access = access or AccessControl.from_settings(settings)
        model = compatibility if compatibility is not None else lambda: load_compatibility(settings)
        self.recommend = recommend or RecommendService(settings, index, events)
        self.outfits = OutfitService(settings, analyzer, index, model, reranker or self.recommend.outfit_reranker)

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

    def Recommend(self, request: pb.RecommendRequest,  # noqa: N802 (gRPC names)
                  context: grpc.ServicerContext) -> pb.RecommendResponse:
        """The shopper's recommendations, each with its reason; the cold start for a stranger."""
        try:
            query = self.recommend.recommend_query(user_id=request.user_id, k=request.k or None,
                                                   filters=filter_fields(request.filters))
            return recommend_response(self.recommend.recommend(query))
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid_message(exc))
        except (IndexUnavailable, EventStoreUnavailable) as exc:
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


    def CompleteTheLook(self, request: pb.CompleteTheLookRequest,  # noqa: N802 (gRPC names)
                        context: grpc.ServicerContext) -> pb.CompleteTheLookResponse:
        try:
            query = self.outfits.query(
                item_id=request.item_id or None, image=request.image or None, k=request.k or None,
                box=(request.box.x0, request.box.y0, request.box.x1, request.box.y1) if request.HasField("box")
                else None,
                garment=request.garment if request.HasField("garment") else None, user=request.user or None)
            return look_response(self.outfits.complete(query))
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid_message(exc))
        except ItemNotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except ImageError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"image: {exc}")
        except (ModelUnavailable, IndexUnavailable) as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def RecordEvent(self, request: pb.RecordEventRequest,  # noqa: N802 (gRPC names)
                    context: grpc.ServicerContext) -> pb.RecordEventResponse:
        try:
            self.access.authorize_write(credential(context), request.user_id, client_address(context), event=True)
            fields = {"kind": request.kind or None, "item_id": request.item_id or None,
                      "at": request.at if request.HasField("at") else None, "event_id": request.event_id or None}
            recorded = self.users.record(self.users.event(request.user_id, fields))
            return pb.RecordEventResponse(event=event_message(recorded.event), created=recorded.created)
        except (Unauthenticated, Forbidden, RateLimited) as exc:
            abort_refused(context, exc)
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid_message(exc))
        except ItemNotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except (EventStoreUnavailable, IndexUnavailable) as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def ForgetUser(self, request: pb.ForgetUserRequest,  # noqa: N802 (gRPC names)
                   context: grpc.ServicerContext) -> pb.ForgetUserResponse:
        try:
            self.access.authorize_write(credential(context), request.user_id, client_address(context), event=False)
            return pb.ForgetUserResponse(user_id=request.user_id, forgotten=self.users.forget(request.user_id))
        except (Unauthenticated, Forbidden, RateLimited) as exc:
            abort_refused(context, exc)
        except InvalidRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid_message(exc))
        except EventStoreUnavailable as exc:
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
    service = pb.DESCRIPTOR.services_by_name["Recommender"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _parsed(getattr(servicer, method.name), getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString)
        for method in service.methods  # every RPC of the proto, so a new one cannot be left unregistered
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def build_grpc_server(settings: Settings, analyzer: AnalyzerLike, index: Index, metrics: Metrics | None = None,
                      address: str | None = None,
                      health_interval_s: float = DEFAULT_INTERVAL_S, events: EventStore | None = None,
                      access: AccessControl | None = None, compatibility: CompatibilityModel | None = None,
                      reranker: Reranker | None = None,
                      recommend: RecommendService | None = None) -> tuple[grpc.Server, int]:
    """A (not yet started) server for the Recommender API; returns it and its bound port.

    ``events``, ``access``, ``compatibility``, ``reranker`` and ``recommend``: as for ``RecommenderService``.

    It also answers ``grpc.health.v1.Health`` (NOT_SERVING until the model and
    the index answer, rechecked every ``health_interval_s``) and server
    reflection (``grpcapi.health``); starting and stopping the returned
    server starts and stops the health watcher.
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
    add_recommender(RecommenderService(settings, analyzer, index, events, access, compatibility, reranker,
                                       recommend), server)
    server = add_health_and_reflection(server, analyzer, index, health_interval_s)
    address = address or f"{settings.host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC API to {address}")
    return server, port
