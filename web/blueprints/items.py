"""Catalog items: ``/api/v1/items/<id>``, its ``/similar`` items and its ``/image``.

Item ids may contain ``/`` (ids derived from file paths), hence ``path:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request, send_file

from eyepic.schema import Item
from web.errors import Problem
from web.params import Collector, parse_filters, parse_k
from web.serialize import hits_json, item_json
from web.services import services

bp = Blueprint("items", __name__, url_prefix="/api/v1/items")

IMAGE_MAX_AGE_S = 24 * 3600  # catalog photos change only on re-index


def _get(item_id: str) -> Item:
    item = services().index.get(item_id)
    if item is None:
        raise Problem(404, "item-not-found", "No such item", f"the catalog has no item with id {item_id!r}")
    return item


@bp.get("/<path:item_id>")
def get(item_id: str) -> dict[str, Any]:
    return item_json(_get(item_id))


@bp.get("/<path:item_id>/similar")
def similar(item_id: str) -> dict[str, Any]:
    """Items nearest to this item's own vector ("more like this").

    Same defaults as search: ``k``, ``group``/``type``/``color`` filters, and
    the item's own group unless a group or type is given. The item itself is
    left out.
    """
    svc = services()
    errors = Collector()
    k = parse_k(request.args, svc.settings, errors)
    user_filters = parse_filters(request.args, errors)
    errors.raise_if_any()
    item = _get(item_id)
    filters = user_filters.for_garment(item.group)
    hits = svc.index.search(item.embedding, k, filters, exclude_ids=[item.id])
    return {"item": item_json(item), "filters": filters.as_dict(), "items": hits_json(hits)}


@bp.get("/<path:item_id>/image")
def image(item_id: str) -> Response:
    """The catalog photo of an item: only the path the index holds, never a client path."""
    item = _get(item_id)
    path = Path(item.image_path).resolve() if item.image_path else None
    if path is None or not path.is_file():
        raise Problem(
            404,
            "image-not-found",
            "Item image not found",
            f"item {item_id!r} has no image file on this server",
        )
    return send_file(path, max_age=IMAGE_MAX_AGE_S, conditional=True)
