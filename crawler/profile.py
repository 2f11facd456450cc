"""Site profiles: one YAML file says where a shop's listings are and how to read them.

Validated up front with every problem listed at once (``ProfileError``), so a
typo in a selector key fails before a browser starts rather than yielding an
empty catalog. A selector ``"css@attr"`` reads an attribute instead of the
text; ``"@attr"`` reads it from the card itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class ProfileError(ValueError):
    """The profile is missing or malformed; the message lists each problem."""


FIELDS = ("title", "price", "currency", "brand", "image", "link", "category", "product_id")
REQUIRED_FIELDS = ("card", "title", "image", "link")


@dataclasses.dataclass(frozen=True)
class Pagination:
    """How a listing continues: a next link, a page parameter, or infinite scroll."""

    next: str = ""  # CSS selector of the "next page" link
    param: str = ""  # query parameter holding the page number (1, 2, ...)
    scroll: bool = False  # scroll until no new cards appear
    max_pages: int = 50  # pages per listing (next / param), scrolls per page (scroll)
    scroll_pause_s: float = 0.5  # wait for cards after each scroll


@dataclasses.dataclass(frozen=True)
class Listing:
    url: str
    category: str = ""  # the class every product of this listing belongs to (training output)
    pagination: Pagination = Pagination()


@dataclasses.dataclass(frozen=True)
class Profile:
    shop: str
    listings: tuple[Listing, ...]
    selectors: dict[str, str]  # card + FIELDS
    image_attributes: tuple[str, ...] = ("data-src", "data-lazy-src", "srcset", "src")
    product_page: dict[str, str] = dataclasses.field(default_factory=dict)  # FIELDS read on each product page
    allow_private: bool = False  # loopback / private addresses (fixture shops, intranets)
    delay_s: float = 1.0  # per host, between requests; robots.txt's Crawl-delay wins when longer
    concurrency: int = 1  # image downloads at once per crawl
    page_load_timeout_s: float = 30.0
    script_timeout_s: float = 10.0
    request_timeout_s: float = 20.0
    retries: int = 3  # extra attempts on timeouts, 429 and 5xx
    backoff_s: float = 1.0  # first backoff; doubles per attempt
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    drop_params: tuple[str, ...] = ("utm_*", "ref", "ref_", "fbclid", "gclid", "source")  # not part of a product URL
    phash_distance: int = 4  # photos whose 64-bit perceptual hashes differ in at most this many bits are one


_TOP = {f.name for f in dataclasses.fields(Profile)}
_PAGINATION = {f.name for f in dataclasses.fields(Pagination)}


def load_profile(path: Path) -> Profile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ProfileError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not YAML ({exc})") from None
    return parse_profile(raw, str(path))


def parse_profile(raw: Any, where: str = "profile") -> Profile:
    errors: list[str] = []
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: a mapping of settings expected")
    for key in sorted(set(raw) - _TOP):
        errors.append(f"unknown key {key!r}")
    shop = raw.get("shop")
    if not isinstance(shop, str) or not shop.strip():
        errors.append("'shop' must name the shop")
    selectors = raw.get("selectors")
    if not isinstance(selectors, dict):
        errors.append("'selectors' must map card/title/image/link/... to CSS selectors")
        selectors = {}
    selectors = {str(k): v for k, v in selectors.items()}
    errors += _check_selectors(selectors, "selectors", REQUIRED_FIELDS)
    product_page = raw.get("product_page") or {}
    if not isinstance(product_page, dict):
        errors.append("'product_page' must map fields to CSS selectors")
        product_page = {}
    errors += _check_selectors(product_page, "product_page", ())
    listings = _listings(raw.get("listings"), errors)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Profile):
        if field.name in {"shop", "listings", "selectors", "product_page"} or field.name not in raw:
            continue
        values[field.name] = _typed(field, raw[field.name], errors)
    if errors:
        raise ProfileError(f"{where}: " + "; ".join(errors))
    profile = Profile(shop=shop.strip(), listings=listings, selectors=selectors, product_page=product_page, **values)
    if profile.concurrency < 1 or profile.delay_s < 0 or profile.retries < 0 or profile.phash_distance < 0:
        raise ProfileError(f"{where}: concurrency >= 1, delay_s >= 0, retries >= 0 and phash_distance >= 0 expected")
    return profile


def _check_selectors(selectors: dict, where: str, required: tuple[str, ...]) -> list[str]:
    errors = [f"{where}.{key}: required" for key in required if not selectors.get(key)]
    allowed = set(FIELDS) | ({"card"} if where == "selectors" else set())
    for key, value in selectors.items():
        if key not in allowed:
            errors.append(f"{where}: unknown field {key!r} (one of {', '.join(sorted(allowed))})")
        elif not isinstance(value, str) or not value.strip():
            errors.append(f"{where}.{key}: a CSS selector string expected")
    return errors


def _listings(raw: Any, errors: list[str]) -> tuple[Listing, ...]:
    if not isinstance(raw, list) or not raw:
        errors.append("'listings' must be a non-empty list of {url, category, pagination}")
        return ()
    out = []
    for n, item in enumerate(raw):
        item = {"url": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            errors.append(f"listings[{n}]: a URL or a mapping with 'url' expected")
            continue
        for key in sorted(set(item) - {"url", "category", "pagination"}):
            errors.append(f"listings[{n}]: unknown key {key!r}")
        if urlsplit(item["url"]).scheme not in {"http", "https"}:
            errors.append(f"listings[{n}]: {item['url']!r} is not an http(s) URL")
        pagination = item.get("pagination") or {}
        if not isinstance(pagination, dict) or set(pagination) - _PAGINATION:
            errors.append(f"listings[{n}].pagination: keys among {', '.join(sorted(_PAGINATION))} expected")
            continue
        modes = [bool(pagination.get("next")), bool(pagination.get("param")), bool(pagination.get("scroll"))]
        if sum(modes) > 1:
            errors.append(f"listings[{n}].pagination: one of next, param or scroll")
        try:
            paging = Pagination(**pagination)
            if paging.max_pages < 1:
                raise ValueError("max_pages must be >= 1")
        except (TypeError, ValueError) as exc:
            errors.append(f"listings[{n}].pagination: {exc}")
            continue
        out.append(Listing(url=item["url"], category=str(item.get("category") or ""), pagination=paging))
    return tuple(out)


def _typed(field: dataclasses.Field, value: Any, errors: list[str]) -> Any:
    kind = str(field.type)
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
    }.get(kind)
    if kind.startswith("tuple"):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        errors.append(f"{field.name}: {kind} expected, got {value!r}")
    return float(value) if kind == "float" and ok else value
