"""``POST /api/v1/search``: a shopper's photo in, each garment with similar items out.

A thin adapter: form fields -> ``SearchService`` (which validates and
searches, for the gRPC API too) -> JSON.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, request

from web.serialize import filter_fields, hits_json
from web.services import services
from web.uploads import form_photo

bp = Blueprint("search", __name__, url_prefix="/api/v1")



@bp.post("/search")
def search() -> dict[str, Any]:
    """Analyze the photo, then search the index once per garment.

    Form fields: ``image`` (file, required); ``group``, ``type``, ``color``,
    ``shop`` (repeatable; the first three also comma-separated); ``k``;
    ``garment`` (search only that detected garment) or ``box``
    (``x0,y0,x1,y1`` 0-1: analyze only that region); ``personalize`` (a
    shopper id: each garment's items re-ranked by their taste). All
    parameters are validated before the model runs.
    """
    svc = services()
    started = time.perf_counter()
    source = request.values
    data = form_photo(svc.settings.max_upload_bytes)
    service = svc.search
    query, user = svc.recommend.with_personalize(
        lambda: service.search_query(image=data, k=source.get("k"), filters=filter_fields(source),
                                     box=source.get("box"), garment=source.get("garment")),
        source.get("personalize"))
    result = svc.recommend.personalize_search(service.search(query), user)
    return {
        "garments": [
            {"index": g.index, **g.garment.to_json(), "filters": g.filters.as_dict(), "items": hits_json(g.hits)}
            for g in result.garments
        ],
        "image": {"width": result.width, "height": result.height},
        "detector_used": result.detector_used,
        "user_box": query.box is not None,
        "model_version": result.model_version,
        "query": {"k": query.k, "filters": query.filters.as_dict(), **({"personalize": user} if user else {})},
        "took_ms": round((time.perf_counter() - started) * 1000, 1),
    }
