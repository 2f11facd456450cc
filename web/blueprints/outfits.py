"""Complete the look: ``GET /api/v1/items/<id>/complete-the-look`` and ``POST /api/v1/complete-the-look``.

A thin adapter over ``services.outfits.OutfitService`` (shared with the gRPC
API): query string or form fields in, JSON out.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge

from services.outfits import GroupLook, LookResult
from web.blueprints.search import FORM_TYPES
from web.errors import unsupported_media
from web.serialize import item_json
from web.services import services

bp = Blueprint("outfits", __name__, url_prefix="/api/v1")


def groups_json(groups: list[GroupLook]) -> list[dict[str, Any]]:
    return [{"group": g.group, "items": [{**item_json(s.item, s.score), "reason": s.reason} for s in g.items]}
            for g in groups]


def look_json(result: LookResult, started: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if result.item is not None:
        out["item"] = item_json(result.item)
        out["groups"] = groups_json(result.groups)
    else:
        out["garments"] = [{"index": g.index, **g.garment.to_json(), "groups": groups_json(g.groups)}
                           for g in result.garments]
        out["image"] = {"width": result.width, "height": result.height}
        out["detector_used"] = result.detector_used
        out["model_version"] = result.model_version
    out["query"] = {"k": result.query.k, "user": result.query.user}
    out["personalised"] = result.personalised
    out["took_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


@bp.get("/items/<path:item_id>/complete-the-look")
def item_look(item_id: str) -> dict[str, Any]:
    """For each complementary group of the item, the catalog items that go with it.

    Query: ``k`` (items per group), ``user`` (personalises once the taste profile exists).
    """
    started = time.perf_counter()
    service = services().outfits
    query = service.query(item_id=item_id, k=request.args.get("k"), user=request.args.get("user"))
    return look_json(service.complete(query), started)


@bp.post("/complete-the-look")
def photo_look() -> dict[str, Any]:
    """The same for the garments of an uploaded photo: ``image`` (file), ``garment`` (index, as search
    numbers them) or ``box`` (x0,y0,x1,y1), ``k``, ``user``; all garments without garment/box."""
    started = time.perf_counter()
    svc = services()
    if request.content_length and request.mimetype not in FORM_TYPES:
        limit = request.max_content_length
        if limit is not None and request.content_length > limit:
            raise RequestEntityTooLarge()
        raise unsupported_media("Content-Type", f"a {request.mimetype or 'untyped'} body is not read here; send "
                                "multipart/form-data with the photo in the file field 'image'", [FORM_TYPES[0]])
    source = request.values
    upload = request.files.get("image")
    data = None
    if upload is not None:
        data = upload.read(svc.settings.max_upload_bytes + 1)
        if len(data) > svc.settings.max_upload_bytes:
            raise RequestEntityTooLarge()
    service = svc.outfits
    query = service.query(image=data, k=source.get("k"), box=source.get("box"), garment=source.get("garment"),
                          user=source.get("user"))
    return look_json(service.complete(query), started)
