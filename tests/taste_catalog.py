"""A small synthetic catalog with known structure, for taste and recommender tests.

Items of one (type, color) lie close together (a shared direction plus noise),
so "a shopper who likes black jeans" has an unambiguous right answer; every
product has two photos (ids ``<product>-a`` / ``-b``) so collapse matters.
"""

from __future__ import annotations

import numpy as np

from eyepic import taxonomy
from eyepic.schema import Item

TYPES = ("t-shirt", "shirt", "jeans", "skirt", "coat", "dress")
COLORS = ("black", "white", "blue", "red")


def synthetic_catalog(per_combo: int = 6, dim: int = 32, seed: int = 0, noise: float = 0.35) -> list[Item]:
    rng = np.random.default_rng(seed)
    centres = {}
    type_dirs = {t: rng.normal(size=dim) for t in TYPES}
    color_dirs = {c: rng.normal(size=dim) for c in COLORS}
    for t in TYPES:
        for c in COLORS:
            v = type_dirs[t] + 0.8 * color_dirs[c]
            centres[(t, c)] = v / np.linalg.norm(v)
    items = []
    for (t, c), centre in centres.items():
        for n in range(per_combo):
            product = f"{t}-{c}-{n}"
            base = centre + noise * rng.normal(size=dim) / np.sqrt(dim)
            for photo in ("a", "b"):
                v = base + 0.05 * rng.normal(size=dim)
                items.append(Item(id=f"{product}-{photo}", embedding=(v / np.linalg.norm(v)).astype(np.float32),
                                  group=taxonomy.group_of(t), type=t, color=c, title=f"{c} {t} {n}",
                                  product_id=product))
    return items
