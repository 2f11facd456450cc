"""Headless Chromium through Selenium 4: load a page politely, read its product cards.

Chromium and chromedriver are Debian's, passed explicitly so Selenium Manager
never downloads anything. Images are not loaded by the browser (they are
fetched and checked by ``crawler.http``); their URLs are read from the lazy-load
attributes. The page's HTTP status comes from the Navigation Timing API, so a
503 or 429 is retried like a timeout.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.http import RETRY_STATUS, FetchFailed
from crawler.polite import HostClock, UrlPolicy

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-extensions", "--window-size=1280,1600")

# Reads every card in one round trip: {field: text or attribute} per card, plus the next link.
_READ_CARDS = """
const [cardSel, fields, imageAttrs, nextSel] = arguments;
function read(root, spec) {
  const at = spec.lastIndexOf('@');
  const css = at >= 0 ? spec.slice(0, at).trim() : spec, attr = at >= 0 ? spec.slice(at + 1) : '';
  const el = css ? root.querySelector(css) : root;
  if (!el) return '';
  if (attr) return (attr === 'href' || attr === 'src') ? (el[attr] || el.getAttribute(attr) || '')
                                                       : (el.getAttribute(attr) || '');
  return (el.innerText || el.textContent || '').trim();
}
function image(root, spec) {
  const el = spec.includes('@') ? null : (root.matches(spec) ? root : root.querySelector(spec));
  if (!el) return spec.includes('@') ? read(root, spec) : '';
  for (const attr of imageAttrs) {
    const v = el.getAttribute(attr);
    if (!v || v.startsWith('data:')) continue;
    if (attr.endsWith('srcset')) {
      const best = v.split(',').map(s => s.trim().split(/\\s+/))
        .map(([u, d]) => [u, parseFloat(d || '1')]).sort((a, b) => b[1] - a[1])[0];
      if (best) return new URL(best[0], document.baseURI).href;
    } else return new URL(v, document.baseURI).href;
  }
  return '';
}
const cards = (cardSel ? Array.from(document.querySelectorAll(cardSel)) : [document.documentElement]).map(card => {
  const out = {};
  for (const [name, spec] of Object.entries(fields)) {
    if (name === 'image') out.image = image(card, spec);
    else if (name === 'link') { const v = read(card, spec.includes('@') ? spec : spec + '@href');
                                out.link = v ? new URL(v, document.baseURI).href : ''; }
    else out[name] = read(card, spec);
  }
  return out;
});
const next = nextSel ? document.querySelector(nextSel) : null;
return {cards: cards, next: next && next.href ? next.href : ''};
"""

_STATUS = ("const n = performance.getEntriesByType('navigation')[0];"
           "return n && n.responseStatus ? n.responseStatus : 0;")


@dataclasses.dataclass
class PageRead:
    url: str
    cards: list[dict[str, str]]
    next_url: str = ""


class Browser:
    """One Chromium window; every page load goes through the policy, the host clock and retries."""

    def __init__(self, user_agent: str, policy: UrlPolicy, clock: HostClock, page_load_timeout_s: float,
                 script_timeout_s: float, retries: int, backoff_s: float, profile_dir: Path,
                 sleep: Callable[[float], None] = time.sleep):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self.policy, self.clock, self.retries, self.backoff_s = policy, clock, retries, backoff_s
        self.retried = 0
        self._sleep = sleep
        self._profile = Path(profile_dir)  # a fresh one per run: a killed crawl's stale lock files go with it
        shutil.rmtree(self._profile, ignore_errors=True)
        self._profile.mkdir(parents=True)
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-agent={user_agent}", f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.images": 2})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(page_load_timeout_s)
        self.driver.set_script_timeout(script_timeout_s)

    def load(self, url: str) -> None:
        """Navigate to ``url``; retried on timeouts, 429 and 5xx. Raises Refused or FetchFailed."""
        from selenium.common.exceptions import TimeoutException, WebDriverException

        self.policy.check(url)
        detail = ""
        for attempt in range(self.retries + 1):
            self.clock.wait(url)
            try:
                self.driver.get(url)
                status = int(self.driver.execute_script(_STATUS) or 0)
                self.policy.check_address(self.driver.current_url)  # where a redirect led
                if status not in RETRY_STATUS:
                    if status >= 400:
                        raise FetchFailed(f"http-{status}", url)
                    return
                detail = f"HTTP {status}"
            except TimeoutException:
                detail = "page load timed out"
                self._stop()
            except WebDriverException as exc:
                detail = exc.msg or type(exc).__name__
            if attempt < self.retries:
                self.retried += 1
                self._sleep(self.backoff_s * 2**attempt)
        raise FetchFailed("unreachable", url, detail)

    def read(self, card: str, fields: dict[str, str], image_attributes: tuple[str, ...],
             next_selector: str = "") -> PageRead:
        found: dict[str, Any] = self.driver.execute_script(
            _READ_CARDS, card, fields, list(image_attributes), next_selector)
        return PageRead(self.driver.current_url, list(found["cards"]), str(found["next"]))

    def scroll(self, card: str, pause_s: float, max_scrolls: int) -> int:
        """Scroll to the bottom until the number of cards stops growing; returns scrolls made."""
        count = self._count(card)
        for n in range(max_scrolls):
            self.driver.execute_script("window.scrollTo(0, document.body.scrollHeight);")
            deadline = time.monotonic() + pause_s
            grown = count
            while time.monotonic() < deadline and grown == count:
                time.sleep(0.05)
                grown = self._count(card)
            if grown == count:
                return n
            count = grown
        return max_scrolls

    def _count(self, card: str) -> int:
        return int(self.driver.execute_script("return document.querySelectorAll(arguments[0]).length;", card))

    def _stop(self) -> None:
        from selenium.common.exceptions import WebDriverException

        try:
            self.driver.execute_script("window.stop();")
        except WebDriverException:  # best effort after a timeout; the retry reloads anyway
            pass

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)
