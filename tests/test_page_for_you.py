"""The page's "For you" view in a real headless Chromium.

A guest (no ``eyepic.session`` in localStorage) sees the cold-start list and
a clear "not personal yet" note; a shopper whose session names a user with
likes sees items, each with its "because you liked ..." reason. The app is
real (Flask in a thread, an EmbeddedIndex of real catalog photos); only the
model is ``FakeModels``, which this view never calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from eyepic.settings import Settings
from indexer.embedded import EmbeddedIndex
from serving.analyzer import Analyzer
from taste.events import Event, MemoryEventStore
from web import create_app

from fakes import FakeModels, make_items
from test_page import driver, serve  # noqa: F401 (driver: the page tests' one browser fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("for-you")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=8, max_k=50)
    index = EmbeddedIndex(tmp / "index.sqlite")
    items = make_items(catalog_photos)
    index.upsert(items)
    events = MemoryEventStore()
    for n, item in enumerate(items[:3]):
        events.add(Event("shopper-7", "like", item.id, 1_000.0 + n, f"e{n}"))
    app = create_app(settings, analyzer=Analyzer(FakeModels()), index=index, events=events)
    url, stop = serve(app)
    yield {"url": url, "liked": [i.title for i in items[:3]]}
    stop()
    index.close()


def settled(driver) -> str:  # noqa: F811
    from selenium.webdriver.support.ui import WebDriverWait

    def state(d) -> str | bool:
        value = d.find_element("id", "for-you").get_attribute("data-state")
        return value if value in ("ready", "error") else False

    return WebDriverWait(driver, 30, poll_frequency=0.1).until(state)


def cards(driver) -> list[dict[str, str]]:  # noqa: F811
    return driver.execute_script(
        "return [...document.querySelectorAll('#for-you-items .result')].map(c => ({id: c.dataset.id, "
        "reason: c.querySelector('.reason').textContent, title: c.querySelector('.title').textContent}))")


def test_a_guest_sees_the_cold_start_with_a_clear_note(driver, site) -> None:  # noqa: F811
    driver.get(site["url"] + "/")
    driver.execute_script("window.localStorage.removeItem('eyepic.session')")
    driver.refresh()
    assert settled(driver) == "ready"
    section = driver.find_element("id", "for-you")
    assert section.is_displayed() and section.get_attribute("data-personal") == "false"
    note = driver.find_element("id", "for-you-note")
    assert note.is_displayed() and note.text.startswith("Not personal yet")
    shown = cards(driver)
    assert len(shown) == 12 and all(c["reason"] for c in shown)
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # CSP kept, no script errors


def test_a_shopper_sees_items_with_the_reason_under_each(driver, site) -> None:  # noqa: F811
    driver.get(site["url"] + "/")
    session = json.dumps({"user_id": "shopper-7", "token": "t"})
    driver.execute_script("window.localStorage.setItem('eyepic.session', arguments[0])", session)
    driver.refresh()
    assert settled(driver) == "ready"
    assert driver.find_element("id", "for-you").get_attribute("data-personal") == "true"
    assert "Not personal" not in driver.find_element("id", "for-you-note").text
    shown = cards(driver)
    assert shown and all(c["reason"].startswith("because you liked ") for c in shown)
    assert any(title in c["reason"] for c in shown for title in site["liked"])
    reasons = driver.find_elements("css selector", "#for-you-items .result .reason")
    assert reasons[0].is_displayed()
    driver.execute_script("document.getElementById('for-you').scrollIntoView()")
    path = Path(__file__).resolve().parents[1] / "var" / "reports" / "page-for-you.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.execute_script("window.localStorage.removeItem('eyepic.session')")
