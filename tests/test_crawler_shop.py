"""``eyepic crawl`` against the fixture shop in real headless Chromium, end to end.

The shop (devtools/shop.py) serves real clothing photos on 127.0.0.1 behind
every trap it has; the crawl must keep exactly ``FixtureShop.expected()``.
A crawl killed midway resumes to the same catalog; a re-crawl updates a
changed price and marks a vanished product; the catalog indexes through the
real Analyzer, the indexer deletes the vanished id, and a crawled item's own
photo finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.cli import main
from crawler.state import pages_done
from devtools.shop import FixtureShop, serve
from indexer.catalog import read_catalog
from training.data.clothing_small import read_folder_per_class

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "crawler" / "profiles" / "fixture-shop.yaml"


@pytest.fixture(scope="module")
def shop_photos(data_dir: Path) -> dict[str, list[Path]]:
    base = data_dir / "clothing-small" / "train"
    return {c: sorted((base / c).glob("*.jpg"))[:12] for c in ("dress", "pants", "shirt", "hat")}


def start_shop(photos, tmp: Path, delay_s: float = 0.0):
    """A fresh shop (its once-only traps armed) and a profile pointing at it."""
    shop = FixtureShop(photos)
    base, stop = serve(shop)
    profile = tmp / "profile.yaml"
    profile.write_text(EXAMPLE.read_text().replace("http://127.0.0.1:8765", base)
                       .replace("delay_s: 1.0", f"delay_s: {delay_s}"))
    return shop, profile, stop


def crawl(profile: Path, out: Path) -> dict:
    assert main(["crawl", "--profile", str(profile), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "crawl-report.json").read_text())


def catalog(out: Path) -> dict[str, dict]:
    """URL path -> manifest row (the image's content hash in place of its file name)."""
    rows = [json.loads(line) for line in (out / "catalog.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in rows}) == len(rows) == len({r["url"] for r in rows})  # no duplicates
    found = {}
    for row in rows:
        path = urlsplit(row["url"]).path
        row = dict(row, image=hashlib.sha256((out / row["image"]).read_bytes()).hexdigest())
        for volatile in ("crawled_at", "id", "url"):  # the port and the time differ between shops
            row.pop(volatile)
        found[path] = row
    return found


@pytest.fixture(scope="module")
def first_crawl(shop_photos, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crawl")
    shop, profile, stop = start_shop(shop_photos, tmp)
    report = crawl(profile, tmp / "out")
    yield shop, profile, tmp / "out", report
    stop()


def test_crawl_keeps_exactly_the_expected_products(first_crawl):
    shop, _, out, report = first_crawl
    got = catalog(out)
    expected = shop.expected()
    assert set(got) == set(expected)
    for path, product in expected.items():
        row = got[path]
        assert row["title"] == f"{product.category.capitalize()} {product.slug.split('-', 1)[1]}"
        assert row["price"] == product.price and row["currency"] == "EUR" and row["shop"] == "fixture-shop"
        assert row["brand"] == product.brand  # read from the product page
        assert row["product_id"] == f"SKU-{product.slug}" and row["type"] == product.category
        assert row["image"] == hashlib.sha256(product.photo.read_bytes()).hexdigest()  # the original photo
        assert row["status"] == "active"
    assert report["duplicates"] == {"url": 1, "image": 1}
    assert report["skipped"] == {"robots": 1, "broken-image": 1}
    assert report["retries"] >= 2  # the 503 and the slow page's timeout
    assert report["pages"] == 7 and report["products_kept"] == len(expected) == 29
    assert shop.hits.get("/outlet/?", 0) == 0 and not any(k.startswith("/img/hat") for k in shop.hits)


def test_crawl_outputs_feed_the_indexer_and_the_training_reader(first_crawl):
    shop, _, out, _ = first_crawl
    entries = read_catalog(out / "catalog.jsonl")
    assert len(entries) == 29 and all(e.image_path.is_file() and e.crawled_at for e in entries)
    samples = read_folder_per_class(out / "classes")
    counts = {t: sum(s.type == t for s in samples) for t in ("dress", "pants", "shirt")}
    assert counts == {"dress": 11, "pants": 8, "shirt": 10} and len(samples) == 29


def test_killed_crawl_resumes_to_the_same_catalog(first_crawl, shop_photos, tmp_path):
    _, _, full_out, _ = first_crawl
    shop, profile, stop = start_shop(shop_photos, tmp_path)
    out = tmp_path / "out"
    try:
        child = subprocess.Popen([sys.executable, "-m", "app.cli", "crawl", "--profile", str(profile), "--out",
                                  str(out), "--quiet"], cwd=REPO, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and pages_done(out) < 3:
                assert child.poll() is None, "the crawl ended before it could be killed"
                time.sleep(0.05)
        finally:
            os.killpg(child.pid, signal.SIGKILL)  # the crawl, chromedriver and Chromium
            child.wait()
        assert 3 <= pages_done(out) < 7
        started = time.monotonic()
        report = crawl(profile, out)
        resume_s = time.monotonic() - started
    finally:
        stop()
    assert report["resumed"] and report["run"] == 1
    assert catalog(out) == catalog(full_out)
    assert report["duplicates"] == {"url": 1, "image": 1} and report["skipped"] == {"robots": 1, "broken-image": 1}
    print(f"resumed in {resume_s:.1f}s")



@pytest.mark.slow  # trains the session's tiny model when no other test has
def test_recrawl_updates_and_vanishes_and_crawl_index_search_finds_a_crawled_item(
        shop_photos, tiny_model_dir, data_dir, tmp_path, monkeypatch, capsys):
    from app.cli import build_analyzer
    from app.indexing import index_catalog, main_garment
    from eyepic.settings import Settings
    from indexer.factory import open_index

    shop, profile, stop = start_shop(shop_photos, tmp_path)
    out = tmp_path / "out"
    settings = Settings(data_dir=data_dir, var_dir=tmp_path / "var", model_dir=tiny_model_dir)
    analyzer = build_analyzer(settings)
    index = open_index(settings)
    try:
        crawl(profile, out)
        first = {urlsplit(e.url).path: e for e in read_catalog(out / "catalog.jsonl")}
        assert index_catalog(list(first.values()), analyzer, index, progress=False).indexed == 29
        # The shop changes: a price drops, a product goes away.
        shop.products["dress-0"].price = 9.99
        del shop.products["pants-7"]
        report = crawl(profile, out)
        assert report["run"] == 2 and not report["resumed"]
        assert report["updated"] == 1 and report["vanished_this_run"] == 1 and report["images_downloaded"] == 0
        again = {urlsplit(e.url).path: e for e in read_catalog(out / "catalog.jsonl")}
        assert set(again) == set(first) and again["/p/pants-7"].vanished and again["/p/dress-0"].price == 9.99
        assert not (out / "classes" / "pants" / f"{again['/p/pants-7'].id}.jpg").exists()
        index.close()
        for name, value in (("DATA_DIR", data_dir), ("VAR_DIR", settings.var_dir), ("MODEL_DIR", tiny_model_dir)):
            monkeypatch.setenv(f"EYEPIC_{name}", str(value))
        capsys.readouterr()
        assert main(["index", str(out / "catalog.jsonl")]) == 0  # what a user runs after a re-crawl
        said = capsys.readouterr().out
        assert "29 catalog images: 1 indexed, 27 already indexed, 0 failed; index holds 28" in said
        assert "1 vanished items removed from the index" in said
        index = open_index(settings)
        assert index.get(again["/p/pants-7"].id) is None and index.get(again["/p/dress-0"].id).price == 9.99
        # A shopper's photo of a crawled product finds it.
        wanted = again["/p/shirt-6"]
        garment = main_garment(analyzer.analyze(wanted.image_path.read_bytes()).garments)
        hits = index.search(garment.embedding, k=3)
        assert hits[0].item.id == wanted.id and hits[0].score > 0.99
    finally:
        index.close()
        stop()


def test_a_recrawl_with_a_failed_listing_marks_nothing_vanished(shop_photos, tmp_path):
    import yaml

    shop, profile, stop = start_shop(shop_photos, tmp_path)
    spec = yaml.safe_load(profile.read_text())
    pants = [x for x in spec["listings"] if x["category"] == "pants"]
    closed = {"url": pants[0]["url"].replace("/c/pants", "/c/closed")}  # answers 404
    out = tmp_path / "out"
    try:
        profile.write_text(yaml.safe_dump(dict(spec, listings=pants)))
        assert crawl(profile, out)["catalog_active"] == 8
        del shop.products["pants-7"]
        profile.write_text(yaml.safe_dump(dict(spec, listings=[*pants, closed])))  # this run sees part of the shop
        report = crawl(profile, out)
        assert report["skipped"] == {"http-404": 1} and report["vanished_this_run"] == 0
        assert report["catalog_active"] == 8
        profile.write_text(yaml.safe_dump(dict(spec, listings=pants)))
        report = crawl(profile, out)
        assert report["vanished_this_run"] == 1 and report["catalog_active"] == 7
    finally:
        stop()
