"""Both index backends give the same complete-the-look answers (embedded and a real Elasticsearch).

Candidates come from ``Index.search`` with a group filter, and the model
re-scores and diversifies them in a fixed order, so the answer depends only
on which items each backend retrieves: the same catalog (400 items, several
photos per product, every outfit group) is indexed into both and every
anchor's look compared item by item. The Elasticsearch case skips without a
node at ``EYEPIC_ES_URL`` (a failure under ``EYEPIC_REQUIRE_ES=1``), like the
index conformance suite whose fixture it shares.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from eyepic import taxonomy
from eyepic.colors import COLOR_NAMES
from eyepic.schema import Item
from eyepic.settings import Settings
from indexer.factory import open_index
from services.outfits import OutfitService

from fakes import DIM, FakeModels
from outfit_fakes import tiny_compatibility
from test_index_conformance import es_url  # noqa: F401  (the shared node fixture)

GROUPS = ("top", "bottom", "outer", "onepiece", "shoes")


def catalog(n: int = 400, seed: int = 11) -> list[Item]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, DIM))
    items = []
    for i in range(n):
        group = GROUPS[i % len(GROUPS)]
        types = taxonomy.types_in_group(group)
        v = centers[i % 6] + 0.7 * rng.normal(size=DIM)
        items.append(Item(id=f"look-{i:03d}", embedding=(v / np.linalg.norm(v)).astype(np.float32), group=group,
                          type=types[(i // 5) % len(types)], color=COLOR_NAMES[(i // 3) % len(COLOR_NAMES)],
                          title=f"{group} {i}", product_id=f"p-{i // 10:02d}-{i % 5}"))
    return items


def looks(index, items: list[Item], settings: Settings) -> list:
    from serving.analyzer import Analyzer

    service = OutfitService(settings, Analyzer(FakeModels()), index, tiny_compatibility())
    out = []
    for anchor in items[:25]:
        result = service.complete(service.query(item_id=anchor.id, k=5))
        out.append([(g.group, [(s.item.id, round(s.score, 3), s.reason) for s in g.items]) for g in result.groups])
    return out


@pytest.mark.elasticsearch
def test_embedded_and_elasticsearch_give_the_same_looks(es_url, tmp_path):  # noqa: F811
    items = catalog()
    embedded_settings = Settings.from_env(index="embedded", var_dir=tmp_path, index_name="looks", default_k=5,
                                          max_k=20, outfit_candidates=40)
    es_settings = Settings.from_env(index="elasticsearch", var_dir=tmp_path, es_url=es_url, default_k=5, max_k=20,
                                    index_name=f"eyepic-conformance-looks-{uuid.uuid4().hex[:8]}",
                                    outfit_candidates=40)
    embedded, es = open_index(embedded_settings), open_index(es_settings)
    try:
        for index in (embedded, es):
            index.upsert(items)
        assert es.count() == embedded.count() == len(items)
        want = looks(embedded, items, embedded_settings)
        assert all(groups and all(g[1] for g in groups) for groups in want)
        assert looks(es, items, es_settings) == want
    finally:
        es.drop_all()
        es.close()
        embedded.close()
