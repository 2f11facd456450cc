"""Catalog sources: a folder of images or a JSONL manifest.

A manifest line: ``{"id", "image" (path, relative to the manifest), "title",
optional "price", "shop", "brand", "url", "product_id", "type", "currency",
"crawled_at", "status"}``; ``"status": "vanished"`` (a re-crawl no longer found
the product) asks the indexer to delete the id. A folder:
every image under it; the id is its relative path, the title comes from its
parent folder's name. A shop's own category (manifest "type", or a class
folder named like a taxonomy type or a product data set class) is kept: the
indexer trusts it over the model's guess. Bad lines are reported with
their line numbers, all at once, before any indexing starts.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

from eyepic import taxonomy
from eyepic.imaging import iter_images


class CatalogError(ValueError):
    """The catalog source is missing or malformed; the message says where."""


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    id: str
    image_path: Path
    title: str = ""
    product_id: str = ""
    price: float | None = None
    shop: str = ""
    brand: str = ""
    url: str = ""
    type: str = ""  # the shop's own category, when it names a taxonomy type
    crawled_at: str = ""  # set by the crawler: the indexer then re-indexes the id when its fields changed
    vanished: bool = False  # the shop no longer lists it: the indexer deletes the id


_ID = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    return _ID.sub("-", text).strip("-")


def known_type(name: str) -> str:
    """The taxonomy type a shop category names, or "" if it names none."""
    name = taxonomy.PRODUCT_FOLDER_TYPES.get(name, name)
    return name if name in taxonomy.TYPE_NAMES else ""


def _declared_type(value: object) -> str:
    if value in (None, ""):
        return ""
    found = known_type(str(value))
    if not found:
        raise ValueError(f"unknown type {value!r}; one of {', '.join(taxonomy.TYPE_NAMES)}")
    return found


def read_catalog(source: Path) -> list[CatalogEntry]:
    source = Path(source)
    if source.is_dir():
        return _read_folder(source)
    if source.is_file() and source.suffix in {".jsonl", ".ndjson"}:
        return _read_manifest(source)
    raise CatalogError(f"{source}: not a folder of images or a .jsonl manifest")


def _read_folder(root: Path) -> list[CatalogEntry]:
    entries = []
    for path in sorted(iter_images(root)):
        rel = path.relative_to(root)
        label = path.parent.name.replace("-", " ").replace("_", " ")
        entries.append(CatalogEntry(id=slug(str(rel.with_suffix(""))), image_path=path,
                                    title=f"{label.capitalize()} {path.stem[:8]}", shop=root.name,
                                    type=known_type(path.parent.name)))
    if not entries:
        raise CatalogError(f"{root}: no images found")
    return entries


def _read_manifest(path: Path) -> list[CatalogEntry]:
    entries, errors, seen = [], [], set()
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            item_id, image = str(row["id"]).strip(), str(row["image"])
            if not item_id or item_id in seen:
                raise ValueError(f"empty or duplicate id {item_id!r}")
            status = row.get("status", "active")
            if status not in ("active", "vanished"):
                raise ValueError(f"status must be 'active' or 'vanished', not {status!r}")
            image_path = (path.parent / image).resolve()
            if status == "active" and not image_path.is_file():
                raise ValueError(f"image not found: {image}")
            price = row.get("price")
            entries.append(CatalogEntry(
                id=item_id, image_path=image_path, title=str(row.get("title", "")),
                product_id=str(row.get("product_id", "")),
                price=None if price is None else float(price), shop=str(row.get("shop", "")),
                brand=str(row.get("brand", "")), url=str(row.get("url", "")),
                type=_declared_type(row.get("type")), crawled_at=str(row.get("crawled_at", "")),
                vanished=status == "vanished",
            ))
            seen.add(item_id)
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            errors.append(f"{path}:{n}: {exc}")
    if errors:
        raise CatalogError("bad manifest lines:\n" + "\n".join(errors[:20]))
    if not entries:
        raise CatalogError(f"{path}: no entries")
    return entries


def write_product_manifest(sets: Sequence[tuple[str, Path]], out: Path, split: str = "train") -> Path:
    """A JSONL manifest of the ``split`` photos of product data sets (``(shop, root)`` pairs,
    ``root/<split>/<class>/*.jpg``), each with its class as the shop's category.

    The demo's catalog: the train photos only, so the validation photos that
    the models' numbers are reported on never match themselves in a search.
    Sets that are absent are skipped; none at all is a CatalogError.
    """
    lines = []
    for shop, root in sets:
        for class_dir in sorted(Path(root, split).glob("*")):
            type_name = known_type(class_dir.name)
            if not class_dir.is_dir() or not type_name:
                continue
            label = taxonomy.garment_type(type_name).en
            for path in sorted(iter_images(class_dir)):
                item_id = slug(f"{shop}-{class_dir.name}-{path.stem}")
                lines.append(json.dumps({"id": item_id, "image": str(path.resolve()),
                                         "title": f"{label} {path.stem[:6]}", "shop": shop,
                                         "product_id": item_id, "type": type_name}))
    if not lines:
        raise CatalogError(f"no product photos under {', '.join(str(r / split) for _, r in sets)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    return out
