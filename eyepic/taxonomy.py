"""The garment taxonomy both datasets and every model head share.

Two levels, as in the seed: a *group* (onepiece, outer, top, bottom, plus the
non-apparel groups shoes, bag, hat) and a fine *type*. Each source label of
each dataset maps to one type here; labels that are not catalog garments
(skin, hair, jewellery, underwear, legwear) map to nothing and are ignored.
The tables are data: changing the vocabulary is an edit here, and every
export records the lists it was trained with in its metadata.json.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Group:
    name: str
    en: str
    ko: str
    apparel: bool


@dataclasses.dataclass(frozen=True)
class GarmentType:
    name: str
    group: str
    en: str
    ko: str


GROUPS: tuple[Group, ...] = (
    Group("onepiece", "One-piece", "원피스", True),
    Group("outer", "Outerwear", "아우터", True),
    Group("top", "Top", "상의", True),
    Group("bottom", "Bottom", "하의", True),
    Group("shoes", "Shoes", "신발", False),
    Group("bag", "Bag", "가방", False),
    Group("hat", "Hat", "모자", False),
)

TYPES: tuple[GarmentType, ...] = (
    GarmentType("dress", "onepiece", "Dress", "드레스"),
    GarmentType("jumpsuit", "onepiece", "Jumpsuit", "점프수트"),
    GarmentType("bodysuit", "onepiece", "Bodysuit / romper", "바디수트"),
    GarmentType("coat", "outer", "Coat", "코트"),
    GarmentType("jacket", "outer", "Jacket", "재킷"),
    GarmentType("blazer", "outer", "Blazer", "블레이저"),
    GarmentType("cardigan", "outer", "Cardigan", "가디건"),
    GarmentType("vest", "outer", "Vest", "베스트"),
    GarmentType("t-shirt", "top", "T-shirt", "반팔 티셔츠"),
    GarmentType("longsleeve", "top", "Long-sleeve top", "긴팔 티셔츠"),
    GarmentType("shirt", "top", "Shirt", "셔츠"),
    GarmentType("polo", "top", "Polo shirt", "폴로 셔츠"),
    GarmentType("blouse", "top", "Blouse", "블라우스"),
    GarmentType("sweater", "top", "Sweater", "니트"),
    GarmentType("hoodie", "top", "Hoodie / sweatshirt", "후드·맨투맨"),
    GarmentType("top", "top", "Top", "탑"),
    GarmentType("sleeveless", "top", "Sleeveless top", "민소매"),
    GarmentType("pants", "bottom", "Pants", "팬츠"),
    GarmentType("jeans", "bottom", "Jeans", "청바지"),
    GarmentType("shorts", "bottom", "Shorts", "반바지"),
    GarmentType("skirt", "bottom", "Skirt", "스커트"),
    GarmentType("leggings", "bottom", "Leggings", "레깅스"),
    GarmentType("shoes", "shoes", "Shoes", "신발"),
    GarmentType("bag", "bag", "Bag", "가방"),
    GarmentType("hat", "hat", "Hat", "모자"),
)

# clothing-small: folder name -> type. "outwear" photos are mostly jackets.
CLOTHING_SMALL_TYPES: dict[str, str] = {
    "dress": "dress",
    "hat": "hat",
    "longsleeve": "longsleeve",
    "outwear": "jacket",
    "pants": "pants",
    "shirt": "shirt",
    "shoes": "shoes",
    "shorts": "shorts",
    "skirt": "skirt",
    "t-shirt": "t-shirt",
}

# clothing-extra (same source and photographers as clothing-small): its ten
# classes plus seven more. "body" photos are mostly baby bodysuits and rompers
# (one piece from neck to legs), "undershirt" sleeveless vests and tank tops,
# "top" camisoles and strappy tops.
CLOTHING_EXTRA_TYPES: dict[str, str] = {
    **CLOTHING_SMALL_TYPES,
    "blazer": "blazer",
    "blouse": "blouse",
    "body": "bodysuit",
    "hoodie": "hoodie",
    "polo": "polo",
    "top": "top",
    "undershirt": "sleeveless",
}

# Folder names of product-photo trees (either data set, or a crawl that names
# its categories the same way) -> type.
PRODUCT_FOLDER_TYPES: dict[str, str] = CLOTHING_EXTRA_TYPES

# CCP label name -> type; labels absent here are not catalog garments.
CCP_TYPES: dict[str, str] = {
    "dress": "dress",
    "romper": "jumpsuit",
    "swimwear": "jumpsuit",
    "coat": "coat",
    "cape": "coat",
    "jacket": "jacket",
    "blazer": "blazer",
    "suit": "blazer",
    "cardigan": "cardigan",
    "vest": "vest",
    "t-shirt": "t-shirt",
    "shirt": "shirt",
    "blouse": "blouse",
    "sweater": "sweater",
    "jumper": "sweater",
    "hoodie": "hoodie",
    "sweatshirt": "hoodie",
    "top": "top",
    "bodysuit": "top",
    "pants": "pants",
    "jeans": "jeans",
    "shorts": "shorts",
    "skirt": "skirt",
    "leggings": "leggings",
    "shoes": "shoes",
    "boots": "shoes",
    "clogs": "shoes",
    "flats": "shoes",
    "heels": "shoes",
    "loafers": "shoes",
    "pumps": "shoes",
    "sandals": "shoes",
    "sneakers": "shoes",
    "wedges": "shoes",
    "bag": "bag",
    "purse": "bag",
    "wallet": "bag",
    "hat": "hat",
}

GROUP_NAMES: tuple[str, ...] = tuple(g.name for g in GROUPS)
APPAREL_GROUPS: tuple[str, ...] = tuple(g.name for g in GROUPS if g.apparel)
TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in TYPES)
_TYPES_BY_NAME = {t.name: t for t in TYPES}
_GROUPS_BY_NAME = {g.name: g for g in GROUPS}


def garment_type(name: str) -> GarmentType:
    """The type called ``name``; KeyError names the valid ones."""
    try:
        return _TYPES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown garment type {name!r}; one of {', '.join(TYPE_NAMES)}") from None


def group(name: str) -> Group:
    try:
        return _GROUPS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown group {name!r}; one of {', '.join(GROUP_NAMES)}") from None


def group_of(type_name: str) -> str:
    return garment_type(type_name).group


def types_in_group(group_name: str) -> tuple[str, ...]:
    return tuple(t.name for t in TYPES if t.group == group_name)


def as_dict() -> dict:
    """The taxonomy as plain JSON, for metadata.json and the web page."""
    return {
        "groups": [dataclasses.asdict(g) for g in GROUPS],
        "types": [dataclasses.asdict(t) for t in TYPES],
    }
