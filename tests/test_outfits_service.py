"""The complete-the-look use case over a real embedded index of real catalog photos (FakeModels seam)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from eyepic.exports import ModelUnavailable
from eyepic.settings import Settings
from indexer.embedded import EmbeddedIndex
from services.outfits import OutfitService, Suggestion, load_compatibility
from services.requests import InvalidRequest, ItemNotFound
from serving.analyzer import Analyzer

from fakes import FakeModels, make_items
from outfit_fakes import tiny_compatibility


@pytest.fixture(scope="module")
def catalog(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("outfits")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=5, max_k=20)
    index = EmbeddedIndex(settings.index_dir / "test.sqlite")
    items = make_items(catalog_photos)
    for item in items:
        if item.type == "pants":  # two photos of one product: the look shows one of them
            item.product_id = "pants-product"
    index.upsert(items)
    analyzer = Analyzer(FakeModels(groups=("top", "bottom"), detections=[(0.2, 0.05, 0.8, 0.5),
                                                                        (0.25, 0.5, 0.75, 0.98)]))
    try:
        yield {"settings": settings, "index": index, "items": {i.id: i for i in items}, "analyzer": analyzer,
               "service": OutfitService(settings, analyzer, index, tiny_compatibility())}
    finally:
        index.close()


def item_of(catalog: dict, type_name: str):
    return next(i for i in catalog["items"].values() if i.type == type_name)


def test_a_top_gets_bottoms_outerwear_and_shoes_one_per_product(catalog):
    service: OutfitService = catalog["service"]
    top = item_of(catalog, "t-shirt")
    result = service.complete(service.query(item_id=top.id, k=4))
    assert result.item.id == top.id and not result.personalised
    assert [g.group for g in result.groups] == ["bottom", "outer", "shoes"]
    for look in result.groups:
        assert 1 <= len(look.items) <= 4
        assert {s.item.group for s in look.items} == {look.group}
        products = [s.item.product_id for s in look.items]
        assert len(products) == len(set(products))
        assert all(s.reason for s in look.items)
    bottoms = result.groups[0].items
    assert len(bottoms) == 4 and sum(s.item.product_id == "pants-product" for s in bottoms) <= 1


def test_a_dress_takes_outerwear_and_shoes_and_a_hat_gets_nothing(catalog):
    service: OutfitService = catalog["service"]
    dress = item_of(catalog, "dress")
    assert [g.group for g in service.complete(service.query(item_id=dress.id)).groups] == ["outer", "shoes"]
    hat = item_of(catalog, "hat")
    assert service.complete(service.query(item_id=hat.id)).groups == []


def test_the_items_are_the_models_best_rescored_and_the_reason_comes_from_its_prior(catalog):
    """With no diversity the bottoms come in the model's score order; the tiny model's one
    preference (black tops with blue bottoms) words the reason."""
    settings = Settings(var_dir=catalog["settings"].var_dir, outfit_diversity=0.0, default_k=5, max_k=20)
    model = tiny_compatibility()
    service = OutfitService(settings, catalog["analyzer"], catalog["index"], model)
    top = item_of(catalog, "shirt")
    top.color = "black"
    looks = service.looks(top.group, top.embedding, top.type, "black", 20)
    bottoms = looks[0].items
    assert [s.score for s in bottoms] == sorted((s.score for s in bottoms), reverse=True)
    every = [i for i in catalog["items"].values() if i.group == "bottom"]
    expected = model.score("top", top.embedding, top.type, "black", "bottom", np.stack([i.embedding for i in every]),
                           [i.type for i in every], [i.color for i in every])
    assert bottoms[0].score == pytest.approx(float(expected.max()), abs=1e-4)
    blue = [s for s in bottoms if s.item.color == "blue"]
    plural = {"skirt": "skirts", "shorts": "shorts", "pants": "pants"}
    assert blue and all(s.reason == f"black shirts are often worn with blue {plural[s.item.type]}" for s in blue)


def test_the_item_itself_and_its_product_are_left_out(catalog):
    service: OutfitService = catalog["service"]
    shoes = item_of(catalog, "shoes")
    for look in service.complete(service.query(item_id=shoes.id, k=20)).groups:
        assert shoes.product_id not in {s.item.product_id for s in look.items}


def test_a_photo_gets_a_look_per_garment_or_for_the_chosen_one(catalog, photo):
    service: OutfitService = catalog["service"]
    result = service.complete(service.query(image=photo, k=2))
    assert [(g.index, g.garment.group) for g in result.garments] == [(0, "top"), (1, "bottom")]
    assert [look.group for look in result.garments[1].groups] == ["top", "outer", "shoes"]
    assert result.detector_used and result.width > 0
    one = service.complete(service.query(image=photo, k=2, garment="1"))
    assert [g.index for g in one.garments] == [1]
    assert [[s.item.id for s in look.items] for look in one.garments[0].groups] == \
        [[s.item.id for s in look.items] for look in result.garments[1].groups]
    with pytest.raises(InvalidRequest, match="garment: the photo has 2 garments"):
        service.complete(service.query(image=photo, garment=2))


def test_the_taste_seam_reranks_for_a_user(catalog):
    calls = []

    def reverse(user: str, group: str, items: list[Suggestion]) -> list[Suggestion]:
        calls.append((user, group))
        return list(reversed(items))

    plain: OutfitService = catalog["service"]
    service = OutfitService(catalog["settings"], catalog["analyzer"], catalog["index"], tiny_compatibility(),
                            reranker=reverse)
    top = item_of(catalog, "t-shirt")
    mine = service.complete(service.query(item_id=top.id, k=3, user="shopper-1"))
    anyone = service.complete(service.query(item_id=top.id, k=3))
    assert mine.personalised and not anyone.personalised
    assert calls == [("shopper-1", "bottom"), ("shopper-1", "outer"), ("shopper-1", "shoes")]
    wide = plain.looks(top.group, top.embedding, top.type, top.color, 9, exclude=top)[0].items  # 3 x k
    assert [s.item.id for s in mine.groups[0].items] == [s.item.id for s in wide][::-1][:3]
    assert [s.item.id for s in wide][:3] == [s.item.id for s in anyone.groups[0].items]
    assert [s.item.id for s in anyone.groups[0].items] == \
        [s.item.id for s in plain.complete(plain.query(item_id=top.id, k=3, user="shopper-1")).groups[0].items]


@pytest.mark.parametrize("fields, names", [
    ({}, ["image"]),
    ({"item_id": "x", "image": b"jpeg"}, ["image"]),
    ({"item_id": "x", "k": "0"}, ["k"]),
    ({"item_id": "x", "garment": "1"}, ["garment"]),
    ({"image": b"jpeg", "garment": "1", "box": "0.1,0.1,0.5,0.5"}, ["garment"]),
    ({"item_id": "x", "user": "robert'); drop table"}, ["user"]),
    ({"image": b"jpeg", "k": "many", "user": "u" * 129, "box": "1,1,0,0"}, ["k", "box", "user"]),
])
def test_bad_requests_name_every_bad_field(catalog, fields, names):
    with pytest.raises(InvalidRequest) as err:
        catalog["service"].query(**fields)
    assert [p.name for p in err.value.problems] == names


def test_unknown_item_and_missing_model(catalog, tmp_path):
    service: OutfitService = catalog["service"]
    with pytest.raises(ItemNotFound):
        service.complete(service.query(item_id="no-such-item"))
    settings = Settings(var_dir=tmp_path, release_dir=tmp_path / "models")
    missing = OutfitService(settings, catalog["analyzer"], catalog["index"], lambda: load_compatibility(settings))
    with pytest.raises(ModelUnavailable, match="no compatibility model"):
        missing.complete(missing.query(item_id=item_of(catalog, "t-shirt").id))
    wrong_size = OutfitService(settings, catalog["analyzer"], catalog["index"], tiny_compatibility(dim=8))
    with pytest.raises(ModelUnavailable, match="8-d embeddings"):
        wrong_size.complete(wrong_size.query(item_id=item_of(catalog, "t-shirt").id))
