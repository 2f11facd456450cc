"""The crawler's parts without a browser: profiles, URL policy, politeness, HTTP retries, image checks.

HTTP goes to the real fixture shop (devtools/shop.py) on 127.0.0.1 with real clothing photos.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crawler.http import FetchFailed, Http
from crawler.items import ImageRejected, category_type, check_image, nearest, parse_price
from crawler.polite import HostClock, Refused, UrlPolicy, canonical_url
from crawler.profile import ProfileError, load_profile, parse_profile
from devtools.shop import FixtureShop, serve
from eyepic.settings import Settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "crawler" / "profiles" / "fixture-shop.yaml"
AGENT = Settings().crawl_agent


@pytest.fixture(scope="module")
def shop_photos(data_dir: Path) -> dict[str, list[Path]]:
    base = data_dir / "clothing-small" / "train"
    return {c: sorted((base / c).glob("*.jpg"))[:12] for c in ("dress", "pants", "shirt", "hat")}


@pytest.fixture()
def shop(shop_photos):
    shop = FixtureShop(shop_photos)
    base, stop = serve(shop)
    yield shop, base
    stop()


def make_http(base: str, policy: UrlPolicy | None = None, retries: int = 2) -> Http:
    holder: list[Http] = []
    policy = policy or UrlPolicy(AGENT, True, lambda url: holder[0].robots_text(url))
    http = Http(AGENT, policy, HostClock(0.0, policy.crawl_delay), timeout_s=5, retries=retries, backoff_s=0.01)
    holder.append(http)
    return http


def test_example_profile_loads_and_bad_profiles_list_every_problem(tmp_path):
    profile = load_profile(EXAMPLE)
    assert profile.shop == "fixture-shop" and len(profile.listings) == 4 and profile.concurrency == 1
    assert [bool(x.pagination.next) for x in profile.listings] == [True, False, False, False]
    with pytest.raises(ProfileError) as bad:
        parse_profile({"shop": "", "listings": [{"url": "ftp://x/", "pagination": {"next": "a", "scroll": True}}],
                       "selectors": {"card": ".p", "titel": ".t"}, "delay_s": "fast"})
    message = str(bad.value)
    for expected in ("'shop'", "not an http(s) URL", "one of next, param or scroll", "unknown field 'titel'",
                     "selectors.title: required", "selectors.image: required", "delay_s: float expected"):
        assert expected in message
    (tmp_path / "p.yaml").write_text("shop: [")
    with pytest.raises(ProfileError, match="not YAML"):
        load_profile(tmp_path / "p.yaml")
    with pytest.raises(ProfileError, match="No such file"):
        load_profile(tmp_path / "missing.yaml")


def test_the_user_agent_names_eyepic_and_its_contact_url():
    settings = Settings.from_env({"EYEPIC_CRAWL_CONTACT_URL": "https://eyepic.example/bot"})
    assert settings.crawl_agent == "EyepicBot/0.1 (+https://eyepic.example/bot)"
    assert Settings(crawl_user_agent="Custom/2").crawl_agent == "Custom/2"


def test_canonical_urls_prices_and_categories():
    drop = load_profile(EXAMPLE).drop_params
    assert canonical_url("HTTP://Shop.example:80/p/1?utm_source=x&b=2&a=1&ref=home#reviews", drop) == \
        "http://shop.example/p/1?a=1&b=2"
    assert canonical_url("https://shop.example:8443/p/1", drop) == "https://shop.example:8443/p/1"
    with pytest.raises(ValueError):
        canonical_url("http://shop.example:port/p/1", drop)
    assert parse_price("€1.299,00") == (1299.0, "EUR")
    assert parse_price("$39.90") == (39.9, "USD")
    assert parse_price("1,299.00 USD") == (1299.0, "USD")
    assert parse_price("sold out") == (None, "")
    assert category_type("Dress") == "dress" and category_type("body") == "bodysuit" and category_type("toys") == ""


def test_policy_refuses_other_schemes_private_addresses_and_robots_closed_paths(shop):
    _, base = shop
    strict = UrlPolicy(AGENT, allow_private=False, read_robots=lambda url: (404, ""))
    for url, reason in (("file:///etc/passwd", "scheme"), ("javascript:alert(1)", "scheme"),
                        (f"{base}/c/dress", "private-address"), ("http://10.1.2.3/", "private-address"),
                        ("http://[::1]:8080/", "private-address"),
                        ("http://169.254.169.254/latest", "private-address")):
        with pytest.raises(Refused) as refused:
            strict.check(url)
        assert refused.value.reason == reason, url
    http = make_http(base)
    http.policy.check(f"{base}/c/dress")  # the fixture profile allows loopback
    with pytest.raises(Refused, match="robots"):
        http.get(f"{base}/outlet/", 1000)
    assert http.policy.crawl_delay(f"{base}/c/dress") == 0.0
    slow = UrlPolicy("SlowBot/1.0", True, http.robots_text)
    assert slow.crawl_delay(f"{base}/c/dress") == 5.0
    closed = UrlPolicy(AGENT, True, lambda url: (503, ""))  # robots.txt unreachable: assume closed
    with pytest.raises(Refused, match="robots"):
        closed.check(f"{base}/c/dress")


def test_host_clock_spaces_requests_per_host_and_honours_the_longer_crawl_delay():
    clock = HostClock(0.2)
    start = time.monotonic()
    for _ in range(3):
        clock.wait("http://a.example/x")
    clock.wait("http://b.example/x")  # another host does not wait for a.example
    assert 0.38 < time.monotonic() - start < 0.6
    robots = HostClock(0.0, crawl_delay=lambda url: 0.3)
    start = time.monotonic()
    robots.wait("http://a.example/1")
    robots.wait("http://a.example/2")
    assert time.monotonic() - start >= 0.29


def test_http_retries_503_then_gives_up_with_a_reason(shop):
    fixture, base = shop
    http = make_http(base)
    reply = http.get(f"{base}/c/pants?page=2", 1_000_000)  # 503 once, then the page
    assert reply.status == 200 and b"pants-0-again" in reply.body and http.retried == 1
    assert http.get(f"{base}/img/nothing.jpg", 1000).status == 404  # not retried
    assert http.retried == 1
    dead = make_http("http://127.0.0.1:9", retries=1)
    with pytest.raises(FetchFailed) as failed:
        dead.get("http://127.0.0.1:9/x", 1000, robots=False)
    assert failed.value.reason == "unreachable" and dead.retried == 1
    with pytest.raises(FetchFailed, match="too-large"):
        http.get(f"{base}/img/dress-0.jpg", 1000)
    assert UrlPolicy(AGENT, True, lambda url: (200, "")).robots(base).can_fetch(AGENT, f"{base}/outlet/")


def test_images_are_decoded_capped_and_the_same_photo_resized_hashes_alike(shop, shop_photos):
    fixture, base = shop
    http = make_http(base)
    kept = http.get(f"{base}/img/pants-0.jpg", 10_000_000)
    again = http.get(f"{base}/img/resized/pants-0.jpg", 10_000_000)
    assert len(again.body) < len(kept.body)  # another URL, smaller, re-encoded
    suffix, h0 = check_image(kept.body, kept.content_type, 40_000_000)
    _, h1 = check_image(again.body, again.content_type, 40_000_000)
    others = [check_image(p.read_bytes(), "image/jpeg", 40_000_000)[1] for p in shop_photos["pants"][1:12]]
    assert suffix == "jpg"
    assert nearest(h1, np.array([h0], np.int64))[1] <= 4
    assert nearest(h0, np.array(others, np.int64))[1] > 10  # other real photos are far apart
    broken = http.get(f"{base}/img/dress-5.jpg", 10_000_000)
    for data, kind, reason in ((broken.body, "image/jpeg", "broken-image"), (b"<html>", "text/html", "not-an-image"),
                               (kept.body, "application/octet-stream", "not-an-image")):
        with pytest.raises(ImageRejected) as rejected:
            check_image(data, kind, 40_000_000)
        assert rejected.value.reason == reason
    with pytest.raises(ImageRejected) as big:
        check_image(kept.body, "image/jpeg", 1000)
    assert big.value.reason == "too-many-pixels"
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="TIFF")
    with pytest.raises(ImageRejected):  # decodes, but not a format the catalog keeps
        check_image(buf.getvalue(), "image/tiff", 40_000_000)


def test_a_bad_profile_is_one_line_and_exit_2(tmp_path, capsys):
    from app.cli import main

    profile = tmp_path / "shop.yaml"
    profile.write_text("shop: s\nlistings: [file:///etc]\nselectors: {card: .p}\n")
    assert main(["crawl", "--profile", str(profile), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eyepic: ") and "not an http(s) URL" in err and "selectors.link: required" in err
    assert "\n" not in err and not (tmp_path / "out").exists()
