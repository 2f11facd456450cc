"""``GET /api/v1/taxonomy`` (the vocabulary the page builds its filter chips from) and
``GET /api/v1/openapi.json`` (the API's OpenAPI 3.1 description)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from eyepic import taxonomy
from eyepic.colors import PALETTE
from web.openapi import openapi
from web.services import services

bp = Blueprint("meta", __name__, url_prefix="/api/v1")


@bp.get("/taxonomy")
def get_taxonomy() -> dict[str, Any]:
    """Groups, types and colors (en/ko names, swatches) with catalog counts per value.

    ``count`` lets the page hide or grey out chips that would find nothing.
    """
    svc = services()
    facets = svc.index.facets()
    tax = taxonomy.as_dict()

    def counted(rows: list[dict[str, Any]], facet: str) -> list[dict[str, Any]]:
        return [{**row, "count": facets.get(facet, {}).get(row["name"], 0)} for row in rows]

    colors = [{"name": c.name, "en": c.en, "ko": c.ko, "hex": c.hex} for c in PALETTE]
    return {
        "groups": counted(tax["groups"], "group"),
        "types": counted(tax["types"], "type"),
        "colors": counted(colors, "color"),
        "total": svc.index.count(),
        "limits": {
            "default_k": svc.settings.default_k,
            "max_k": svc.settings.max_k,
            "max_upload_bytes": svc.settings.max_upload_bytes,
        },
    }


@bp.get("/openapi.json")
def get_openapi() -> dict[str, Any]:
    """The HTTP API's OpenAPI 3.1 description, with this deployment's limits."""
    return openapi(services().settings)
