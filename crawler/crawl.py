"""The crawl loop: listing pages -> product cards -> checked, deduplicated images -> state.

Order is deterministic (pages in queue order, products in discovery order) so
that a resumed crawl ends with the same catalog as an uninterrupted one.
Duplicates are caught twice: a product URL already seen in this run (after
canonicalisation), and a photo whose perceptual hash is within the profile's
distance of a kept one (the same photo re-encoded or resized).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from crawler.browser import Browser
from crawler.http import FetchFailed, Http, Response
from crawler.items import ImageRejected, check_image, clean_card, item_id, nearest
from crawler.polite import HostClock, Refused, UrlPolicy, canonical_url
from crawler.profile import FIELDS, Profile
from crawler.state import STATE_FILE, CrawlState


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@dataclasses.dataclass
class RunResult:
    run: int
    resumed: bool
    elapsed_s: float
    vanished: int
    counters: dict[str, int]
    pages: dict[str, int]
    retries: int


class Crawler:
    def __init__(self, profile: Profile, out: Path, user_agent: str, delay_s: float | None = None,
                 progress: TextIO | None = sys.stderr, make_browser: Callable[..., Browser] = Browser):
        self.profile, self.out, self.user_agent = profile, Path(out), user_agent
        self.progress = progress
        self.state = CrawlState(self.out / STATE_FILE)
        self.http: Http | None = None
        self.policy: UrlPolicy | None = None
        self._delay_s = profile.delay_s if delay_s is None else delay_s
        self._make_browser = make_browser
        self._browser: Browser | None = None
        self._hash_urls: list[str] = []
        self._hashes = np.zeros(0, np.int64)

    def run(self) -> RunResult:
        started = time.monotonic()
        run, resumed = self.state.open_run(utc_now())
        if not resumed:
            for n, listing in enumerate(self.profile.listings):
                self.state.queue_page(run, canonical_url(listing.url, self.profile.drop_params), n, 1)
        self.policy = UrlPolicy(self.user_agent, self.profile.allow_private, lambda url: self.http.robots_text(url))
        clock = HostClock(self._delay_s, self.policy.crawl_delay)
        self.http = Http(self.user_agent, self.policy, clock, self.profile.request_timeout_s, self.profile.retries,
                         self.profile.backoff_s)
        self._clock = clock
        known = self.state.active_hashes()
        self._hash_urls = [u for u, _ in known]
        self._hashes = np.array([h for _, h in known], np.int64)
        try:
            self._settle_queued(run)  # products a killed crawl had queued
            while (page := self.state.next_page(run)) is not None:
                self._crawl_page(run, page)
                self._settle_queued(run)
                self._report_progress(run)
        finally:
            if self._browser is not None:
                self._browser.close()
        failed = self.state.failed_pages(run)  # a listing that failed to load says nothing about its products
        vanished = self.state.finish_run(run, utc_now(), mark_vanished=not failed)
        if failed and self.progress is not None:
            print(f"{failed} listing pages failed: no product marked vanished this run", file=self.progress)
        retries = self.http.retried + (self._browser.retried if self._browser else 0)
        return RunResult(run, resumed, time.monotonic() - started, vanished, self.state.counters(run),
                         self.state.page_counts(run), retries)

    @property
    def browser(self) -> Browser:
        if self._browser is None:
            p = self.profile
            self._browser = self._make_browser(self.user_agent, self.policy, self._clock, p.page_load_timeout_s,
                                               p.script_timeout_s, p.retries, p.backoff_s,
                                               profile_dir=self.out / ".chromium")
        return self._browser

    # -- listing pages ------------------------------------------------------
    def _crawl_page(self, run: int, page: Any) -> None:
        listing = self.profile.listings[page["listing"]]
        paging = listing.pagination
        fields = {k: v for k, v in self.profile.selectors.items() if k != "card"}
        try:
            self.browser.load(page["url"])
            if paging.scroll:
                self.browser.scroll(self.profile.selectors["card"], paging.scroll_pause_s, paging.max_pages)
            read = self.browser.read(self.profile.selectors["card"], fields, self.profile.image_attributes,
                                     paging.next)
        except (Refused, FetchFailed) as exc:
            with self.state.transaction():
                self.state.close_page(page["seq"], "skipped", exc.reason)
                self.state.count(run, f"skipped:{exc.reason}")
            return
        with self.state.transaction():
            for card in read.cards:
                self._see_card(run, card, listing.category)
            following = self._following(page, read.next_url, bool(read.cards))
            if following:
                self.state.queue_page(run, canonical_url(following, self.profile.drop_params), page["listing"],
                                      page["page_no"] + 1)
            self.state.close_page(page["seq"], "done")
            self.state.count(run, "pages")
            self.state.count(run, "cards", len(read.cards))

    def _following(self, page: Any, next_url: str, had_cards: bool) -> str:
        paging = self.profile.listings[page["listing"]].pagination
        if page["page_no"] >= paging.max_pages or not had_cards:
            return ""
        if paging.next:
            return next_url
        if paging.param:
            parts = urlsplit(page["url"])
            query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != paging.param]
            query.append((paging.param, str(page["page_no"] + 1)))
            return urlunsplit((*parts[:3], urlencode(query), ""))
        return ""

    def _see_card(self, run: int, card: dict[str, str], category: str) -> None:
        link = card.get("link", "")
        if urlsplit(link).scheme not in {"http", "https"}:
            self.state.count(run, "skipped:no-link" if not link else "skipped:scheme")
            return
        try:
            url = canonical_url(link, self.profile.drop_params)
        except ValueError:  # a malformed port or host
            self.state.count(run, "skipped:bad-url")
            return
        data = clean_card(card, category)
        known = self.state.product(url)
        if known is None:
            self.state.add_product(url, item_id(self.profile.shop, url), data, run)
        elif known["seen_run"] == run:
            self.state.count(run, "duplicate-url")
        else:
            changed = json.loads(known["data"]) != data or known["status"] not in ("active", "vanished")
            self.state.see_product(url, data, run, changed)
            self.state.count(run, "updated" if changed and known["status"] == "active" else "unchanged")

    # -- products -----------------------------------------------------------
    def _settle_queued(self, run: int) -> None:
        rows = list(self.state.queued_products())
        if not rows:
            return
        details = [self._details(run, row) for row in rows]
        todo = [(row, d) for row, d in zip(rows, details) if d is not None]
        with ThreadPoolExecutor(self.profile.concurrency) as pool:
            fetched = pool.map(lambda item: self._fetch_image(item[0], item[1]), todo)
            for (row, info), got in zip(todo, fetched):
                self._settle(run, row, info, got)

    def _details(self, run: int, row: Any) -> dict[str, Any] | None:
        """The card's fields, with the product page's over them when the profile reads product pages."""
        info = json.loads(row["data"])
        if not self.profile.product_page:
            return info
        try:
            self.browser.load(row["url"])
            raw = self.browser.read("", self.profile.product_page, self.profile.image_attributes).cards[0]
        except (Refused, FetchFailed) as exc:
            self._skip(run, row, exc.reason)
            return None
        page = clean_card(raw, "")
        keys = {"image": "image_url"}
        for field in FIELDS:
            key = keys.get(field, field)
            if field in raw and page.get(key) not in (None, ""):
                info[key] = page[key]
        return info

    def _fetch_image(self, row: Any, info: dict[str, Any]) -> Response | Exception | None:
        if row["image"] and row["image_url"] == info["image_url"] and (self.out / row["image"]).is_file():
            return None  # same photo URL as the kept one: metadata update only
        try:
            return self.http.get(info["image_url"], self.profile.max_image_bytes, accept="image/*")
        except (Refused, FetchFailed) as exc:
            return exc

    def _settle(self, run: int, row: Any, info: dict[str, Any], got: Response | Exception | None) -> None:
        if isinstance(got, Refused | FetchFailed):
            return self._skip(run, row, got.reason)
        image, phash = row["image"], row["phash"]
        if got is not None:
            try:
                if got.status != 200:
                    raise ImageRejected(f"http-{got.status}", got.url)
                suffix, phash = check_image(got.body, got.content_type, self.profile.max_image_pixels)
            except ImageRejected as exc:
                return self._skip(run, row, exc.reason)
            mine = [i for i, u in enumerate(self._hash_urls) if u != row["url"]]
            hit, distance = nearest(phash, self._hashes[mine])
            if distance <= self.profile.phash_distance:
                return self._skip(run, row, "duplicate-image", status="duplicate")
            image = self._save(row, got.body, suffix)
        self._remember(row["url"], phash)
        with self.state.transaction():
            self.state.settle_product(row["url"], "active", details=info, image=image, image_url=info["image_url"],
                                      phash=phash, crawled_at=utc_now())
            self.state.count(run, "products")
            if got is not None:
                self.state.count(run, "images")

    def _save(self, row: Any, body: bytes, suffix: str) -> str:
        rel = f"images/{row['id']}-{hashlib.sha256(body).hexdigest()[:10]}.{suffix}"
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(body)
        tmp.replace(path)
        if row["image"] and row["image"] != rel:
            (self.out / row["image"]).unlink(missing_ok=True)  # the photo changed
        return rel

    def _remember(self, url: str, phash: int) -> None:
        if url in self._hash_urls:
            self._hashes[self._hash_urls.index(url)] = phash
        else:
            self._hash_urls.append(url)
            self._hashes = np.append(self._hashes, np.int64(phash))

    def _skip(self, run: int, row: Any, reason: str, status: str = "skipped") -> None:
        if row["url"] in self._hash_urls:
            i = self._hash_urls.index(row["url"])
            del self._hash_urls[i]
            self._hashes = np.delete(self._hashes, i)
        with self.state.transaction():
            self.state.settle_product(row["url"], status, reason)
            self.state.count(run, reason if reason.startswith("duplicate") else f"skipped:{reason}")

    def _report_progress(self, run: int) -> None:
        if self.progress is None:
            return
        c, pages = self.state.counters(run), self.state.page_counts(run)
        skipped = {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("skipped:")}
        dups = {k: v for k, v in c.items() if k.startswith("duplicate")}
        print(f"pages {pages.get('done', 0)} done, {pages.get('queued', 0)} queued | products {c.get('products', 0)}"
              f" | images {c.get('images', 0)} | duplicates {dups or 0} | skipped {sum(skipped.values())}"
              f" {skipped or ''}", file=self.progress, flush=True)
