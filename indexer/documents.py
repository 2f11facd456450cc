"""``Item`` <-> stored document, one mapping for both index backends.

The embedded index keeps the document as JSON beside the raw vector; the
Elasticsearch index adds ``indexed_at`` and the vector field. Either way
the catalog fields are written and read here, so a field added to ``Item``
is stored by both or by neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from eyepic.schema import Item


def item_document(item: Item) -> dict[str, Any]:
    """The catalog fields of ``item`` (everything but the vector), JSON-ready."""
    return {
        "id": item.id, "product_id": item.product_id, "group": item.group, "type": item.type,
        "color": item.color, "title": item.title, "image_path": item.image_path, "url": item.url,
        "price": item.price, "shop": item.shop, "brand": item.brand,
        "attributes": list(item.attributes), "model_version": item.model_version,
    }


def item_from_document(doc: Mapping[str, Any], embedding: np.ndarray | list[float] | None) -> Item:
    """The ``Item`` a stored document describes; fields it lacks get their defaults, extra keys are ignored."""
    return Item(
        id=doc["id"],
        embedding=np.asarray(embedding if embedding is not None else [], dtype=np.float32),
        group=doc.get("group", ""),
        type=doc.get("type", ""),
        color=doc.get("color", ""),
        title=doc.get("title", ""),
        image_path=doc.get("image_path", ""),
        product_id=doc.get("product_id", ""),
        url=doc.get("url", ""),
        price=doc.get("price"),
        shop=doc.get("shop", ""),
        brand=doc.get("brand", ""),
        attributes=tuple(doc.get("attributes") or ()),
        model_version=doc.get("model_version", ""),
    )
