"""Parse and validate request parameters into domain values, or raise a 400 Problem.

Every check runs before any model work, and all bad fields are reported at
once (``invalid_params``) so a client can fix a request in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping

from werkzeug.datastructures import MultiDict

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.imaging import validate_box
from eyepic.schema import Box, Filters
from eyepic.settings import Settings
from web.errors import invalid_many

FILTER_VOCABULARY: Mapping[str, tuple[str, ...]] = {
    "group": taxonomy.GROUP_NAMES,
    "type": taxonomy.TYPE_NAMES,
    "color": COLOR_NAMES,
}


class Collector:
    """Gathers bad fields so one response names them all."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, name: str, reason: str) -> None:
        self.errors.append({"name": name, "reason": reason})

    def raise_if_any(self) -> None:
        if self.errors:
            raise invalid_many(self.errors)


def values(source: MultiDict[str, str], name: str) -> list[str]:
    """A field given repeatedly (``color=red&color=blue``) or comma-separated, deduplicated."""
    seen: list[str] = []
    for raw in source.getlist(name):
        for part in raw.split(","):
            value = part.strip().lower()
            if value and value not in seen:
                seen.append(value)
    return seen


def parse_filters(source: MultiDict[str, str], errors: Collector) -> Filters:
    """``group``/``type``/``color`` checked against the taxonomy and the palette."""
    chosen: dict[str, tuple[str, ...]] = {}
    for name, vocabulary in FILTER_VOCABULARY.items():
        given = values(source, name)
        unknown = [v for v in given if v not in vocabulary]
        if unknown:
            errors.add(
                name, f"unknown {name} {', '.join(map(repr, unknown))}; one of {', '.join(vocabulary)}"
            )
        chosen[name] = tuple(v for v in given if v in vocabulary)
    return Filters(**chosen)


def parse_k(source: MultiDict[str, str], settings: Settings, errors: Collector) -> int:
    raw = source.get("k", "").strip()
    if not raw:
        return settings.default_k
    try:
        k = int(raw)
    except ValueError:
        errors.add("k", f"must be a whole number from 1 to {settings.max_k}, not {raw!r}")
        return settings.default_k
    if not 1 <= k <= settings.max_k:
        errors.add("k", f"must be from 1 to {settings.max_k}, not {k}")
    return k


def parse_box(source: MultiDict[str, str], errors: Collector) -> Box | None:
    """``box=x0,y0,x1,y1``, normalised to the photo (0-1)."""
    raw = source.get("box", "").strip()
    if not raw:
        return None
    try:
        return validate_box(raw.split(","))
    except ValueError as exc:
        errors.add("box", str(exc))
        return None


def parse_garment(source: MultiDict[str, str], errors: Collector) -> int | None:
    """``garment=i``: an index into the garments found in the photo (checked later)."""
    raw = source.get("garment", "").strip()
    if not raw:
        return None
    try:
        index = int(raw)
    except ValueError:
        errors.add("garment", f"must be a whole number, not {raw!r}")
        return None
    if index < 0:
        errors.add("garment", f"must be 0 or more, not {index}")
        return None
    return index
