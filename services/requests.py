"""The one request validator of both APIs: raw fields in, domain values or every problem out.

The Flask blueprints and the gRPC servicer each turn their transport's
request into the same raw values (strings from a form, ints from a
message, ``None`` for absent) and call these functions, so both APIs accept
the same requests, apply the same filters and word their refusals alike.
Every field is checked before any model work, and all bad fields are
reported at once (``InvalidRequest.problems``), so a client fixes a request
in one round trip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.imaging import validate_box
from eyepic.schema import Box, Filters

# Filters checked against a vocabulary (lower-cased, comma-separated values allowed) ...
VOCABULARY: Mapping[str, tuple[str, ...]] = {
    "group": taxonomy.GROUP_NAMES,
    "type": taxonomy.TYPE_NAMES,
    "color": COLOR_NAMES,
}
# ... and free-text filters (kept as given, trimmed): shop names may hold commas and capitals.
FREE_TEXT = ("shop",)
FILTER_FIELDS = (*VOCABULARY, *FREE_TEXT)


@dataclasses.dataclass(frozen=True)
class FieldProblem:
    """One bad request field and why (``name`` as the HTTP API spells it: ``k``, ``color``...)."""

    name: str
    reason: str


class InvalidRequest(ValueError):
    """One or more request fields are invalid; ``problems`` names each."""

    def __init__(self, problems: Sequence[FieldProblem]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.name}: {p.reason}" for p in self.problems))


class ItemNotFound(LookupError):
    """The catalog has no item with this id."""

    def __init__(self, item_id: str):
        self.item_id = item_id
        super().__init__(f"the catalog has no item with id {item_id!r}")


class Problems:
    """Gathers bad fields so one error names them all."""

    def __init__(self) -> None:
        self.found: list[FieldProblem] = []

    def add(self, name: str, reason: str) -> None:
        self.found.append(FieldProblem(name, reason))

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidRequest(self.found)


@dataclasses.dataclass(frozen=True)
class SearchQuery:
    """A validated photo search."""

    image: bytes
    k: int
    filters: Filters
    box: Box | None = None
    garment: int | None = None


@dataclasses.dataclass(frozen=True)
class SimilarQuery:
    """A validated "more like this item" request."""

    item_id: str
    k: int
    filters: Filters


def parse_image(image: bytes | None, max_bytes: int, problems: Problems) -> bytes:
    """The photo's encoded bytes: present and within the upload limit (decoding comes later)."""
    if image is None:
        problems.add("image", "missing: send the photo's encoded bytes "
                              "(HTTP: the multipart/form-data file field 'image')")
        return b""
    if len(image) > max_bytes:
        problems.add("image", f"larger than the limit of {max_bytes} bytes")
    return image


def parse_k(raw: str | int | None, default_k: int, max_k: int, problems: Problems) -> int:
    """``k`` from 1 to ``max_k``; absent (``None`` or ``""``) means ``default_k``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default_k
    try:
        k = int(raw.strip()) if isinstance(raw, str) else int(raw)
    except ValueError:
        problems.add("k", f"must be a whole number from 1 to {max_k}, not {raw!r}")
        return default_k
    if not 1 <= k <= max_k:
        problems.add("k", f"must be from 1 to {max_k}, not {k}")
    return k


def _values(raw: Iterable[str], split: bool, lower: bool) -> list[str]:
    """Trimmed, deduplicated values; a field may be given repeatedly or comma-separated."""
    seen: list[str] = []
    for given in raw:
        for part in given.split(",") if split else [given]:
            value = part.strip().lower() if lower else part.strip()
            if value and value not in seen:
                seen.append(value)
    return seen


def parse_filters(raw: Mapping[str, Iterable[str]], problems: Problems) -> Filters:
    """``group``/``type``/``color`` checked against the taxonomy and the palette; ``shop`` as given."""
    chosen: dict[str, tuple[str, ...]] = {}
    for name, vocabulary in VOCABULARY.items():
        given = _values(raw.get(name, ()), split=True, lower=True)
        unknown = [v for v in given if v not in vocabulary]
        if unknown:
            problems.add(name, f"unknown {', '.join(map(repr, unknown))}; one of {', '.join(vocabulary)}")
        chosen[name] = tuple(v for v in given if v in vocabulary)
    for name in FREE_TEXT:
        chosen[name] = tuple(_values(raw.get(name, ()), split=False, lower=False))
    return Filters(**chosen)


def parse_box(raw: str | Sequence[float | str] | None, problems: Problems) -> Box | None:
    """``x0,y0,x1,y1`` normalised to the photo (0-1), as a string or four numbers."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return validate_box(raw.strip().split(",") if isinstance(raw, str) else raw)
    except ValueError as exc:
        problems.add("box", str(exc))
        return None


def parse_garment(raw: str | int | None, problems: Problems) -> int | None:
    """An index into the garments found in the photo (its upper bound is checked after analysis)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        index = int(raw.strip()) if isinstance(raw, str) else int(raw)
    except ValueError:
        problems.add("garment", f"must be a whole number, not {raw!r}")
        return None
    if index < 0:
        problems.add("garment", f"must be 0 or more, not {index}")
        return None
    return index


def garment_indices(found: int, garment: int | None) -> list[int]:
    """Which of the photo's ``found`` garments a request means: all of them, or the one it names
    (known only after the photo is analyzed, hence not checked with the other fields)."""
    if garment is None:
        return list(range(found))
    if garment >= found:
        raise InvalidRequest([FieldProblem("garment", f"the photo has {found} garment{'s' if found != 1 else ''}; "
                                                      f"use an index from 0 to {found - 1}, not {garment}")])
    return [garment]


def search_query(
    *,
    image: bytes | None,
    k: str | int | None,
    filters: Mapping[str, Iterable[str]],
    box: str | Sequence[float | str] | None,
    garment: str | int | None,
    default_k: int,
    max_k: int,
    max_image_bytes: int,
) -> SearchQuery:
    """A photo search from raw fields, or InvalidRequest naming every bad one."""
    problems = Problems()
    data = parse_image(image, max_image_bytes, problems)
    chosen_k = parse_k(k, default_k, max_k, problems)
    chosen_filters = parse_filters(filters, problems)
    chosen_box = parse_box(box, problems)
    chosen_garment = parse_garment(garment, problems)
    if chosen_box is not None and chosen_garment is not None:
        problems.add("garment", "give either 'garment' or 'box', not both")
    problems.raise_if_any()
    return SearchQuery(image=data, k=chosen_k, filters=chosen_filters, box=chosen_box, garment=chosen_garment)


def similar_query(*, item_id: str, k: str | int | None, filters: Mapping[str, Iterable[str]],
                  default_k: int, max_k: int) -> SimilarQuery:
    """A "more like this" request from raw fields, or InvalidRequest naming every bad one."""
    problems = Problems()
    if not item_id:
        problems.add("item_id", "missing")
    chosen_k = parse_k(k, default_k, max_k, problems)
    chosen_filters = parse_filters(filters, problems)
    problems.raise_if_any()
    return SimilarQuery(item_id=item_id, k=chosen_k, filters=chosen_filters)
