"""``GET /api/v1/users/<user_id>/recommendations``: items for one shopper, each with its reason.

A thin adapter over ``services.recommend.RecommendService`` (shared with the
gRPC API's ``Recommend``). An unknown shopper is not an error: they get the
cold-start list (``personal: false`` and a note).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, request
from werkzeug.routing import PathConverter

from services.recommend import RecommendResult
from web.serialize import filter_fields, item_json
from web.services import services

bp = Blueprint("recommendations", __name__, url_prefix="/api/v1/users")


class UserIdConverter(PathConverter):
    """Any text, line breaks included, so a bad id reaches the validator (a 400 naming
    ``user_id``) instead of failing to route (an unexplained 404)."""

    regex = "(?s:[^/].*?)"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("user_id", UserIdConverter))


@bp.get("/<user_id:user_id>/recommendations")
def recommendations(user_id: str) -> dict[str, Any]:
    """Query: ``k``; ``group``/``type``/``color``/``shop`` filters (as search), validated alike."""
    started = time.perf_counter()
    service = services().recommend
    query = service.recommend_query(user_id=user_id, k=request.args.get("k"), filters=filter_fields(request.args))
    result = service.recommend(query)
    return {**recommendations_json(result), "took_ms": round((time.perf_counter() - started) * 1000, 1)}


def recommendations_json(result: RecommendResult) -> dict[str, Any]:
    return {
        "user_id": result.query.user_id,
        "personal": result.personal,
        "note": result.note,
        "query": {"k": result.query.k, "filters": result.query.filters.as_dict()},
        "clusters": result.clusters,
        "items": [{**item_json(r.item, r.score), "reason": r.reason, "cluster": r.cluster} for r in result.items],
    }
