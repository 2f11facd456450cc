"""Like, dislike and "Reset my taste" on the search page, in a real headless Chromium.

The real app (FakeModels, so no model loads; a real embedded index of
catalog photos; the real SQLite events store under a temporary var/) serves
in a thread; the page is driven as a shopper would: it gets its session
once, a photo is searched, one result liked and one disliked, and the
events are read back from the store the server wrote. The page's CSP (no
inline script) stays on: the buttons work only if app.js does it all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.wsgi import serve_in_thread
from eyepic.settings import Settings
from indexer.embedded import EmbeddedIndex
from serving.analyzer import Analyzer
from taste.event_sqlite import SQLiteEventStore
from web import create_app

from fakes import FakeModels, make_items
from test_page import driver  # noqa: F401 (driver: the page tests' one browser fixture)

WAIT_S = 30


@pytest.fixture(scope="module")
def live(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("page-taste")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=6)
    index = EmbeddedIndex(settings.index_dir / "items.sqlite")
    index.upsert(make_items(catalog_photos))
    app = create_app(settings, analyzer=Analyzer(FakeModels()), index=index)
    url, stop = serve_in_thread(app, "eyepic-taste-page")
    yield {"url": url, "settings": settings}
    stop()
    index.close()


def stored_events(settings: Settings, user_id: str) -> list[tuple[str, str]]:
    store = SQLiteEventStore(settings.events_path)
    try:
        return [(e.kind, e.item_id) for e in store.events(user_id)]
    finally:
        store.close()


def test_like_dislike_and_reset_are_stored_for_the_pages_session(driver, live, catalog_photos) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.1)
    driver.get(live["url"] + "/")
    raw = wait.until(lambda d: d.execute_script("return localStorage.getItem('eyepic.session')"))
    me = json.loads(raw)
    assert set(me) == {"user_id", "token"} and me["user_id"].startswith("anon-")

    driver.find_element(By.ID, "file").send_keys(str(catalog_photos["t-shirt"][0]))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) >= 3)
    cards = driver.find_elements(By.CSS_SELECTOR, "#results .result")
    liked, disliked = cards[0].get_attribute("data-id"), cards[1].get_attribute("data-id")

    like = cards[0].find_element(By.CSS_SELECTOR, ".like")
    assert like.get_attribute("aria-pressed") == "false"
    like.click()
    wait.until(lambda d: stored_events(live["settings"], me["user_id"]) == [("like", liked)])
    assert like.get_attribute("aria-pressed") == "true"  # the visible pressed state
    assert like.value_of_css_property("background-color") != cards[0].find_element(
        By.CSS_SELECTOR, ".dislike").value_of_css_property("background-color")

    cards[1].find_element(By.CSS_SELECTOR, ".dislike").click()
    wait.until(lambda d: not cards[1].is_displayed())  # a dislike hides the card at once
    wait.until(lambda d: stored_events(live["settings"], me["user_id"]) == [("like", liked), ("dislike", disliked)])
    assert "we'll show fewer" in driver.find_element(By.ID, "taste-note").text

    # a returning shopper: same session (made once), the like still pressed, the disliked item not shown
    driver.refresh()
    driver.find_element(By.ID, "file").send_keys(str(catalog_photos["t-shirt"][0]))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) >= 2)
    assert json.loads(driver.execute_script("return localStorage.getItem('eyepic.session')")) == me
    def remembered(d) -> bool:  # queried afresh: the cards are redrawn once the history arrives
        return d.execute_script(
            "const card = (id) => document.querySelector(`#results .result[data-id=\"${id}\"]`);"
            "return !card(arguments[1]) && card(arguments[0]) !== null &&"
            " card(arguments[0]).querySelector('.like').getAttribute('aria-pressed') === 'true'", liked, disliked)

    wait.until(remembered)

    driver.find_element(By.ID, "reset-taste").click()
    wait.until(lambda d: "2 events forgotten" in d.find_element(By.ID, "taste-note").text)
    assert stored_events(live["settings"], me["user_id"]) == []
    # the cards are drawn again without the pressed state
    assert driver.find_element(By.CSS_SELECTOR, f'#results .result[data-id="{liked}"] .like').get_attribute(
        "aria-pressed") == "false"
