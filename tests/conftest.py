"""Shared fixtures: real data, a real tiny model trained and exported here,
a real on-disk index of real catalog photos.

The tiny model (32 px, a few epochs on ~100 real photos) is not meant to be
good; it exercises the real train -> export -> load -> analyze -> index ->
search path quickly, once per test session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from eyepic import taxonomy
from eyepic.settings import Settings

REPO = Path(__file__).resolve().parents[1]

TINY_RECIPE = dict(input_size=32, width=8, embedding_dim=16, epochs=3, batch_size=16, learning_rate=3e-3)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("EYEPIC_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "clothing-small").is_dir() or not (path / "ccp").is_dir():
        pytest.fail(f"test data not found at {path}: set EYEPIC_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def tiny_samples(data_dir: Path):
    """~10 train / 2 validation product photos per class, plus CCP garments of 12 photos."""
    from training.data import ccp
    from training.data.clothing_small import read_clothing_small
    from training.data.samples import Sample

    samples = []
    for split, per_class in (("train", 10), ("validation", 2)):
        by_class: dict[str, list[Sample]] = {}
        for s in read_clothing_small(data_dir / "clothing-small", splits=(split,)):
            by_class.setdefault(s.type, []).append(s)
        for items in by_class.values():
            samples += items[:per_class]
    names = ccp.read_label_names(data_dir / "ccp")
    mats = sorted((data_dir / "ccp" / "annotations" / "pixel-level").glob("*.mat"))[:12]
    for i, mat in enumerate(mats):
        photo = data_dir / "ccp" / "photos" / f"{mat.stem}.jpg"
        for r in ccp.photo_regions(photo, mat, names):
            samples.append(Sample(path=photo, source="ccp", split="validation" if i % 4 == 0 else "train",
                                  type=r.type, group=r.group, color=r.color, box=r.box,
                                  key=f"{mat.stem}/{r.group}"))
    return samples


@pytest.fixture(scope="session")
def tiny_trained(tiny_samples, tmp_path_factory):
    """(model, info) of a tiny classifier trained on real photos."""
    from training.recipe import ClassifierRecipe
    from training.train_classifier import train_classifier

    report = tmp_path_factory.mktemp("tiny-report")
    return train_classifier(tiny_samples, ClassifierRecipe(**TINY_RECIPE), report, verbose=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_trained, tiny_samples, tmp_path_factory) -> Path:
    """A model dir holding ``classifier/1/``: the tiny model, exported for serving."""
    from training.export import export_classifier
    from training.predictions import encode_sample

    model_dir = tmp_path_factory.mktemp("models")
    warmup = [encode_sample(s) for s in tiny_samples[:4]]
    export_classifier(tiny_trained[0], model_dir, "classifier", training=tiny_trained[1],
                      warmup_images=warmup)
    return model_dir


@pytest.fixture(scope="session")
def catalog_manifest(data_dir: Path, tmp_path_factory) -> Path:
    """A JSONL catalog of 40 real product photos (4 per class, validation split).

    Each line carries its shop category, so item groups are fixed (4 per
    class) whatever the tiny model predicts.
    """
    out = tmp_path_factory.mktemp("catalog") / "catalog.jsonl"
    lines = []
    for class_dir in sorted((data_dir / "clothing-small" / "validation").iterdir()):
        for i, photo in enumerate(sorted(class_dir.glob("*.jpg"))[:4]):
            lines.append(json.dumps({
                "id": f"{class_dir.name}-{i}", "image": str(photo), "title": f"{class_dir.name} #{i}",
                "price": 10.0 + i, "shop": "test-shop" if i % 2 else "other-shop",
                "type": class_dir.name,  # the shop's category, as real catalogs have
            }))
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="session")
def catalog_index_settings(tiny_model_dir, catalog_manifest, data_dir, tmp_path_factory) -> Settings:
    """Settings whose model dir holds the tiny export and whose embedded
    index already holds the 40-photo catalog, indexed through the real analyzer."""
    from app.cli import build_analyzer
    from app.indexing import index_catalog
    from indexer.catalog import read_catalog
    from indexer.factory import open_index

    var = tmp_path_factory.mktemp("var")
    settings = Settings(data_dir=data_dir, var_dir=var, model_dir=tiny_model_dir, default_k=8, max_k=50,
                        max_upload_bytes=2 * 1024 * 1024)
    index = open_index(settings)
    try:
        report = index_catalog(read_catalog(catalog_manifest), build_analyzer(settings), index, progress=False)
    finally:
        index.close()
    assert report.indexed == 40, report
    return settings


@pytest.fixture(scope="session")
def catalog_photos(data_dir: Path) -> dict[str, list[Path]]:
    """Three real product photos per clothing-small class, in a fixed order."""
    base = data_dir / "clothing-small" / "train"
    return {
        folder: sorted((base / folder).glob("*.jpg"))[:3] for folder in sorted(taxonomy.CLOTHING_SMALL_TYPES)
    }


@pytest.fixture(scope="session")
def photo(catalog_photos: dict[str, list[Path]]) -> bytes:
    return catalog_photos["t-shirt"][0].read_bytes()


FAULT_ES_PORT = int(os.environ.get("EYEPIC_FAULT_ES_PORT", "9250"))


@pytest.fixture(scope="session")
def fault_es():
    """A second Elasticsearch node (port 9250, files in var/es-faults) that fault tests stop
    and start; never the shared node on 9200. Skips (fails under EYEPIC_REQUIRE_ES=1) when it
    cannot start; stopped at the end of the session."""
    from devtools.es_node import EsNode, EsNodeError, default_home

    node = EsNode(FAULT_ES_PORT, default_home())
    try:
        if not node.answers():
            node.wipe()
        node.start()
    except (EsNodeError, OSError) as exc:
        if os.environ.get("EYEPIC_REQUIRE_ES") == "1":
            pytest.fail(f"EYEPIC_REQUIRE_ES=1 but the fault-test node did not start: {exc}", pytrace=False)
        pytest.skip(f"no fault-test Elasticsearch node: {exc}")
    yield node
    node.stop()
