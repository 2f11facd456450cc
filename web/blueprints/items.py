"""Catalog items: ``/api/v1/items/<id>``, its ``/similar`` items and its ``/image``.

Item ids may contain ``/`` (ids derived from file paths), hence ``path:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request, send_file

from web.errors import Problem
from web.serialize import filter_fields, hits_json, item_json
from web.services import services

bp = Blueprint("items", __name__, url_prefix="/api/v1/items")

IMAGE_MAX_AGE_S = 24 * 3600  # catalog photos change only on re-index


@bp.get("/<path:item_id>")
def get(item_id: str) -> dict[str, Any]:
    return item_json(services().search.item(item_id))


@bp.get("/<path:item_id>/similar")
def similar(item_id: str) -> dict[str, Any]:
    """Items nearest to this item's own vector ("more like this").

    Same validation and defaults as search (``SearchService.similar``): ``k``,
    ``group``/``type``/``color``/``shop`` filters, and the item's own group
    unless a group or type is given. The item itself is left out. ``personalize``
    (a shopper id) re-ranks them by that shopper's taste.
    """
    svc = services()
    service = svc.search
    query, user = svc.recommend.with_personalize(
        lambda: service.similar_query(item_id=item_id, k=request.args.get("k"), filters=filter_fields(request.args)),
        request.args.get("personalize"))
    result = svc.recommend.personalize_similar(service.similar(query), user)
    return {"item": item_json(result.item), "filters": result.filters.as_dict(), "items": hits_json(result.hits)}


@bp.get("/<path:item_id>/image")
def image(item_id: str) -> Response:
    """The catalog photo of an item: only the path the index holds, never a client path."""
    item = services().search.item(item_id)
    path = Path(item.image_path).resolve() if item.image_path else None
    if path is None or not path.is_file():
        raise Problem(
            404,
            "image-not-found",
            "Item image not found",
            f"item {item_id!r} has no image file on this server",
        )
    return send_file(path, max_age=IMAGE_MAX_AGE_S, conditional=True)
