"""What a product card becomes: clean fields, a stable id, a checked image and its perceptual hash."""

from __future__ import annotations

import hashlib
import io
import re

import imagehash
import numpy as np
from PIL import Image

from eyepic import taxonomy
from eyepic.imaging import ImageError, load_image

_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "₽": "RUB", "zł": "PLN", "kr": "SEK"}
_NUMBER = re.compile(r"\d[\d\s.,']*")
_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


def parse_price(text: str) -> tuple[float | None, str]:
    """("€1.299,00" -> (1299.0, "EUR"), "$39.90" -> (39.9, "USD")); the decimal mark is whichever
    of ',' and '.' comes last when followed by one or two digits."""
    text = text.strip()
    currency = next((code for sym, code in _CURRENCY_SYMBOLS.items() if sym in text), "")
    if not currency:
        code = re.search(r"\b[A-Z]{3}\b", text)
        currency = code.group(0) if code else ""
    match = _NUMBER.search(text)
    if not match:
        return None, currency
    digits = re.sub(r"[\s']", "", match.group(0)).rstrip(".,")
    decimal = re.search(r"[.,](\d{1,2})$", digits)
    whole = re.sub(r"[.,]", "", digits[: decimal.start()] if decimal else digits)
    try:
        return float(f"{whole}.{decimal.group(1)}" if decimal else whole), currency
    except ValueError:
        return None, currency


def category_type(category: str) -> str:
    """The taxonomy type a shop's category names (its folder names included), or ""."""
    name = taxonomy.PRODUCT_FOLDER_TYPES.get(category.strip().lower(), category.strip().lower())
    return name if name in taxonomy.TYPE_NAMES else ""


def item_id(shop: str, canonical: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", shop).strip("-").lower() or "shop"
    return f"{slug}-{hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()[:12]}"


def clean_card(card: dict[str, str], category: str) -> dict[str, object]:
    """Card text -> the fields kept per product (whitespace collapsed, price parsed)."""
    text = {k: " ".join(str(v).split()) for k, v in card.items()}
    price, symbol = parse_price(text.get("price", ""))
    return {
        "title": text.get("title", ""), "price": price, "currency": text.get("currency", "").upper() or symbol,
        "brand": text.get("brand", ""), "image_url": text.get("image", ""),
        "category": text.get("category", "") or category, "product_id": text.get("product_id", ""),
    }


class ImageRejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def check_image(data: bytes, content_type: str, max_pixels: int) -> tuple[str, int]:
    """(file suffix, 64-bit perceptual hash) of bytes that decode fully as an image; else ImageRejected."""
    if not content_type.startswith("image/"):
        raise ImageRejected("not-an-image", f"content type {content_type or 'missing'}")
    try:
        picture = load_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        reason = "too-many-pixels" if "pixels are accepted" in str(exc) else "broken-image"
        raise ImageRejected(reason, str(exc)) from None
    with Image.open(io.BytesIO(data)) as probe:
        suffix = _FORMATS.get(probe.format or "", "")
    if not suffix:
        raise ImageRejected("not-an-image", "an image format the catalog does not keep")
    bits = imagehash.phash(picture).hash.flatten()
    return suffix, int(np.packbits(bits).view(">u8")[0].astype(np.int64))


def nearest(phash: int, known: np.ndarray) -> tuple[int, int]:
    """(row, Hamming distance) of the closest hash in ``known`` (int64), or (-1, 65) when empty."""
    if not len(known):
        return -1, 65
    distance = np.bitwise_count(np.bitwise_xor(known, np.int64(phash)))
    row = int(np.argmin(distance))
    return row, int(distance[row])
