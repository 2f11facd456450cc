"""JSON shapes of catalog items, shared by search and the items resource, and form fields in."""

from __future__ import annotations

from typing import Any

from flask import url_for
from werkzeug.datastructures import MultiDict

from eyepic.schema import Hit, Item
from services.requests import FILTER_FIELDS


def item_json(item: Item, score: float | None = None) -> dict[str, Any]:
    """An item as clients see it: public fields plus URLs, never the vector or server path."""
    out: dict[str, Any] = {"id": item.id}
    if score is not None:
        out["score"] = round(float(score), 4)
    out.update(item.public())
    out["image_url"] = url_for("items.image", item_id=item.id)
    out["similar_url"] = url_for("items.similar", item_id=item.id)
    return out


def hits_json(hits: list[Hit]) -> list[dict[str, Any]]:
    return [item_json(hit.item, hit.score) for hit in hits]


def filter_fields(source: MultiDict[str, str]) -> dict[str, list[str]]:
    """The raw filter fields of a form or query string (each possibly repeated), for the validator."""
    return {name: source.getlist(name) for name in FILTER_FIELDS}
