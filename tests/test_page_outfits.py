"""The page's "Complete the look" rows in a real browser (headless Debian Chromium).

The app runs with the FakeModels seam (two garments found: a top and a
bottom), a real embedded index of real catalog photos and a tiny
compatibility model; the page is driven like a shopper: upload a street
photo, see a row per complementary group under the first garment's results,
switch garment, and open "more like this" from a suggestion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eyepic.settings import Settings
from indexer.embedded import EmbeddedIndex
from serving.analyzer import Analyzer
from web import create_app

from fakes import FakeModels, make_items
from outfit_fakes import tiny_compatibility
from test_page import body_state, driver, images_loaded, screenshot, serve, wait_for  # noqa: F401

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


SEEN_USERS: list[str] = []


def recording_reranker(user: str, group: str, items: list) -> list:
    """The taste seam as the page reaches it: remembers who asked, keeps the order."""
    SEEN_USERS.append(user)
    return items


@pytest.fixture(scope="module")
def look_app(catalog_photos: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("page-looks")
    settings = Settings(var_dir=tmp / "var", model_dir=tmp / "models", default_k=6, max_k=20)
    index = EmbeddedIndex(settings.index_dir / "test.sqlite")
    index.upsert(make_items(catalog_photos))
    analyzer = Analyzer(FakeModels(groups=("top", "bottom"), detections=[(0.2, 0.05, 0.8, 0.5),
                                                                        (0.25, 0.5, 0.75, 0.98)]))
    url, stop = serve(create_app(settings, analyzer=analyzer, index=index, compatibility=tiny_compatibility(),
                                 reranker=recording_reranker))
    yield url
    stop()
    index.close()


def look_rows(browser) -> list[tuple[str, list[str], list[str]]]:
    """(group, card groups, reasons) of each row of the visible "Complete the look" section."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#look .look-row')].map(r => [r.dataset.group,"
        " [...r.querySelectorAll('.look-card')].map(c => c.dataset.group),"
        " [...r.querySelectorAll('.look-card .reason')].map(p => p.textContent)])")


def test_each_garment_gets_a_complete_the_look_row_under_its_results(driver, look_app, data_dir):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    find = driver.find_element
    driver.get(look_app + "/")
    wait_for(driver, ("idle",), after=0)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return localStorage.getItem('eyepic.session')"))
    _, done = body_state(driver)
    find(By.ID, "file").send_keys(str(data_dir / "ccp" / "photos" / "0002.jpg"))
    assert wait_for(driver, ("ready", "error"), after=done) == "ready", find(By.ID, "error").text
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "look").is_displayed())

    look = find(By.ID, "look")
    assert look.get_attribute("data-garment") == "0"
    assert find(By.ID, "look-title").text.startswith("Complete the look")
    # under the results, not instead of them
    assert find(By.CSS_SELECTOR, "#results .result")
    assert driver.execute_script(
        "return document.getElementById('results').compareDocumentPosition(document.getElementById('look'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING") != 0
    rows = look_rows(driver)
    assert [r[0] for r in rows] == ["bottom", "outer", "shoes"]  # the first garment is a top
    for group, cards, reasons in rows:
        assert cards and set(cards) == {group} and all(reasons) and len(cards) <= 6
    WebDriverWait(driver, 30).until(lambda d: images_loaded(d, "#look .look-card img", first=1))
    # a row scrolls inside the results pane: the page itself never scrolls sideways
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(driver, REPO / "var" / "reports" / "page-complete-the-look.png")

    # the shopper's session id goes with the look request (the taste seam personalises it when wired)
    user = driver.execute_script("return JSON.parse(localStorage.getItem('eyepic.session') || '{}').user_id")
    assert user and SEEN_USERS and set(SEEN_USERS) == {user}

    # the bottom's row: tops, outerwear and shoes
    find(By.CSS_SELECTOR, '.garment-tab[data-index="1"]').click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "look").get_attribute("data-garment") == "1")
    assert [r[0] for r in look_rows(driver)] == ["top", "outer", "shoes"]

    # "more like this" from a suggestion shows that item's neighbours, and hides the look row
    card = find(By.CSS_SELECTOR, "#look .look-card")
    _, done = body_state(driver)
    card.find_element(By.CSS_SELECTOR, ".more-like-this").click()
    assert wait_for(driver, ("ready",), after=done) == "ready"
    assert find(By.ID, "results-title").text.startswith("More like")
    assert not find(By.ID, "look").is_displayed()
