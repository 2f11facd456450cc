"""``POST /api/v1/search``: a shopper's photo in, each garment with similar items out."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge

from web.errors import invalid
from web.params import Collector, parse_box, parse_filters, parse_garment, parse_k
from web.serialize import hits_json
from web.services import services

bp = Blueprint("search", __name__, url_prefix="/api/v1")


@bp.post("/search")
def search() -> dict[str, Any]:
    """Analyze the photo, then search the index once per garment.

    Form fields: ``image`` (file, required); ``group``, ``type``, ``color``
    (repeatable or comma-separated); ``k``; ``garment`` (search only that
    detected garment) or ``box`` (``x0,y0,x1,y1`` 0-1: analyze only that
    region). All parameters are validated before the model runs.
    """
    svc = services()
    settings = svc.settings
    started = time.perf_counter()
    source = request.values
    errors = Collector()
    upload = request.files.get("image")  # parsing the body may raise 413
    if upload is None:
        errors.add("image", "missing: send the photo as the multipart/form-data file field 'image'")
    k = parse_k(source, settings, errors)
    user_filters = parse_filters(source, errors)
    box = parse_box(source, errors)
    chosen = parse_garment(source, errors)
    if box is not None and chosen is not None:
        errors.add("garment", "give either 'garment' or 'box', not both")
    errors.raise_if_any()
    assert upload is not None

    data = upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise RequestEntityTooLarge()
    analysis = svc.analyzer.analyze(data, box=box)

    indices = list(range(len(analysis.garments)))
    if chosen is not None:
        if chosen >= len(analysis.garments):
            n = len(analysis.garments)
            raise invalid(
                "garment",
                f"the photo has {n} garment{'s' if n != 1 else ''}; "
                f"use an index from 0 to {n - 1}, not {chosen}",
            )
        indices = [chosen]

    garments = []
    for i in indices:
        garment = analysis.garments[i]
        filters = user_filters.for_garment(garment.group)
        hits = svc.index.search(garment.embedding, k, filters)
        garments.append(
            {"index": i, **garment.to_json(), "filters": filters.as_dict(), "items": hits_json(hits)}
        )
    return {
        "garments": garments,
        "image": {"width": analysis.width, "height": analysis.height},
        "detector_used": analysis.detector_used,
        "user_box": box is not None,
        "model_version": svc.analyzer.model_version,
        "query": {"k": k, "filters": user_filters.as_dict()},
        "took_ms": round((time.perf_counter() - started) * 1000, 1),
    }
