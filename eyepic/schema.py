"""Plain data types that cross module boundaries (analyzer, index, web, gRPC)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1, normalised to 0-1


@dataclasses.dataclass
class Garment:
    """One garment found in a photo, with everything search needs."""

    box: Box
    group: str
    type: str
    color: str
    scores: dict[str, float]  # confidence of group, type, color, detection
    embedding: np.ndarray  # L2-normalised float32
    detected: bool = True  # False: the whole photo stood in for a garment

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 4) for v in self.box],
            "group": self.group,
            "type": self.type,
            "color": self.color,
            "scores": {k: round(float(v), 4) for k, v in self.scores.items()},
            "detected": self.detected,
        }


@dataclasses.dataclass
class Item:
    """A catalog document: one product photo's main garment."""

    id: str
    embedding: np.ndarray
    group: str
    type: str
    color: str
    title: str = ""
    image_path: str = ""  # server-side path; never shown to clients
    product_id: str = ""  # several photos of one product share it
    url: str = ""
    price: float | None = None
    shop: str = ""
    brand: str = ""
    attributes: tuple[str, ...] = ()
    model_version: str = ""

    def __post_init__(self) -> None:
        if not self.product_id:
            self.product_id = self.id

    def public(self) -> dict[str, Any]:
        """Fields safe to return to API clients (no vector, no server path)."""
        return {
            "id": self.id,
            "product_id": self.product_id,
            "group": self.group,
            "type": self.type,
            "color": self.color,
            "title": self.title,
            "url": self.url,
            "price": self.price,
            "shop": self.shop,
            "brand": self.brand,
            "attributes": list(self.attributes),
        }


@dataclasses.dataclass(frozen=True)
class Filters:
    """Attribute filters: AND across fields, any-of within one field."""

    group: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    color: tuple[str, ...] = ()
    shop: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.group or self.type or self.color or self.shop)

    def matches(self, item: Item) -> bool:
        return all(
            not wanted or getattr(item, name) in wanted
            for name, wanted in dataclasses.asdict(self).items()
        )

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items() if v}

    def for_garment(self, garment_group: str) -> Filters:
        """The filters one garment's search uses (web and gRPC APIs alike).

        By default a garment only finds items of its own group (a top finds
        tops): similar embeddings across groups (a white shirt and white
        shorts) are rarely what a shopper means. A ``group`` or ``type`` the
        user chose replaces that default, so a shopper can still ask for e.g.
        skirts that go with a top's colour.
        """
        if self.group or self.type:
            return self
        return dataclasses.replace(self, group=(garment_group,))


@dataclasses.dataclass
class Hit:
    item: Item
    score: float  # cosine similarity, higher is closer
