"""The search page in a real browser: headless Debian Chromium driven by Selenium.

The real app (tiny trained model + on-disk index from tests/conftest.py)
serves on a free localhost port in a thread, the way ``eyepic serve`` runs it.
The page is driven like a shopper would: upload a real street photo, see the
garment boxes and result cards, tap a filter chip, "more like this", draw a
box, and a bad upload's error message. Screenshots for a phone and a desktop
window go to var/reports/ so a person can look at them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from devtools.wsgi import serve_in_thread
from eyepic.settings import Settings
from web import create_app

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
DESKTOP = (1280, 900)
WAIT_S = 120  # the first search loads the model in the server thread


def serve(app: Flask) -> tuple[str, Callable[[], None]]:
    """Run ``app`` on a free localhost port in a thread; returns (base URL, stop)."""
    return serve_in_thread(app, "eyepic-test-server")


def chromium(profile: Path):  # -> selenium WebDriver
    """Headless Debian Chromium with a fresh profile and no background network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-extensions", "--lang=en-US", f"--user-data-dir={profile}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def phone(driver) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})


def desktop(driver) -> None:
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
    driver.set_window_size(*DESKTOP)


def body_state(driver) -> tuple[str, int]:
    body = driver.find_element("tag name", "body")
    return body.get_attribute("data-state") or "", int(body.get_attribute("data-requests") or 0)


def wait_for(driver, states: tuple[str, ...], after: int, timeout: float = WAIT_S) -> str:
    """Wait until more than ``after`` requests finished and the page settled in one of ``states``."""
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(d) -> str | bool:
        state, done = body_state(d)
        return state if done > after and state in states else False

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(settled)


def images_loaded(driver, css: str, first: int = 2) -> bool:
    """The first ``first`` images matching ``css`` have loaded.

    Result thumbnails are ``loading="lazy"``: on a phone-sized window the
    ones far below the fold load only when scrolled to, so waiting for all of
    them is a race with Chromium's lazy-load distance.
    """
    return driver.execute_script(
        "const imgs = [...document.querySelectorAll(arguments[0])].slice(0, arguments[1]);"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)",
        css, first,
    )


def screenshot(driver, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def live_app(catalog_index_settings: Settings) -> Iterator[str]:
    app = create_app(catalog_index_settings)
    url, stop = serve(app)
    yield url
    stop()
    app.extensions["eyepic"].index.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian chromium + chromium-driver: apt-get install -y chromium chromium-driver")
    browser = chromium(tmp_path_factory.mktemp("chromium-profile"))
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def street_photo(data_dir: Path) -> Path:
    return data_dir / "ccp" / "photos" / "0002.jpg"


# ---------------------------------------------------------------- tests
def test_search_page_end_to_end(driver, live_app: str, street_photo: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    find = driver.find_element
    find_all = driver.find_elements
    reports = REPO / "var" / "reports"

    phone(driver)
    driver.get(live_app + "/")
    wait_for(driver, ("idle",), after=0)  # taxonomy loaded
    assert not find(By.ID, "workspace").is_displayed()
    assert find(By.ID, "camera").get_attribute("capture") == "environment"

    # upload a real street photo: boxes, garment tabs, result cards
    _, done = body_state(driver)
    find(By.ID, "file").send_keys(str(street_photo))
    assert wait_for(driver, ("ready", "error"), after=done) == "ready", find(By.ID, "error").text
    assert driver.execute_script("return document.getElementById('photo').naturalWidth") > 0
    boxes = find_all(By.CSS_SELECTOR, ".garment-box")
    assert boxes and len(boxes) == len(find_all(By.CSS_SELECTOR, ".garment-tab"))
    assert find(By.CSS_SELECTOR, ".garment-box.selected")
    results = find_all(By.CSS_SELECTOR, "#results .result")
    assert results, "no result cards"
    garment_group = driver.execute_script("return document.querySelector('.garment-tab.selected').innerText")
    assert garment_group.strip()
    assert find(By.ID, "results-title").text.startswith("Similar to")
    WebDriverWait(driver, 30).until(lambda d: images_loaded(d, "#results .result img"))
    assert all(r.find_element(By.CSS_SELECTOR, ".more-like-this").is_displayed() for r in results[:2])
    screenshot(driver, reports / "page.png")

    # a filter chip re-runs the search; every card then has that group
    chip = find(By.CSS_SELECTOR, '.chip[data-facet="group"]')
    group = chip.get_attribute("data-value")
    _, done = body_state(driver)
    chip.click()
    assert wait_for(driver, ("ready",), after=done) == "ready"
    chip = find(By.CSS_SELECTOR, f'.chip[data-facet="group"][data-value="{group}"]')
    assert chip.get_attribute("aria-pressed") == "true"
    cards = find_all(By.CSS_SELECTOR, "#results .result")
    assert cards and {c.get_attribute("data-group") for c in cards} == {group}
    _, done = body_state(driver)
    chip.click()  # off again
    wait_for(driver, ("ready",), after=done)

    # "more like this" on the first card
    first = find(By.CSS_SELECTOR, "#results .result")
    first_id = first.get_attribute("data-id")
    _, done = body_state(driver)
    first.find_element(By.CSS_SELECTOR, ".more-like-this").click()
    assert wait_for(driver, ("ready",), after=done) == "ready"
    assert find(By.ID, "results-title").text.startswith("More like")
    assert find(By.ID, "back").is_displayed()
    similar = find_all(By.CSS_SELECTOR, "#results .result")
    assert similar and first_id not in {c.get_attribute("data-id") for c in similar}
    find(By.ID, "back").click()
    assert find(By.ID, "results-title").text.startswith("Similar to")

    # draw a box over the upper half: one more garment, selected, with its own results
    desktop(driver)
    n_boxes = len(find_all(By.CSS_SELECTOR, ".garment-box"))
    find(By.ID, "draw").click()
    photo = find(By.ID, "photo")
    w, h = photo.size["width"], photo.size["height"]
    _, done = body_state(driver)
    (
        ActionChains(driver)
        .move_to_element_with_offset(photo, int(-w * 0.3), int(-h * 0.3))
        .click_and_hold()
        .move_by_offset(int(w * 0.3), int(h * 0.2))
        .move_by_offset(int(w * 0.3), int(h * 0.2))
        .release()
        .perform()
    )
    assert wait_for(driver, ("ready",), after=done) == "ready", find(By.ID, "error").text
    assert len(find_all(By.CSS_SELECTOR, ".garment-box")) == n_boxes + 1
    assert find(By.CSS_SELECTOR, ".garment-box.user").get_attribute("aria-pressed") == "true"
    assert find_all(By.CSS_SELECTOR, "#results .result")
    WebDriverWait(driver, 30).until(lambda d: images_loaded(d, "#results .result img"))
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, reports / "page-desktop.png")

    # tapping the first garment's box (near its corner, clear of the drawn box) selects it again
    first_box = find(By.CSS_SELECTOR, '.garment-box[data-index="0"]')
    bw, bh = first_box.size["width"], first_box.size["height"]
    ActionChains(driver).move_to_element_with_offset(
        first_box, -bw // 2 + 12, -bh // 2 + 30
    ).click().perform()
    assert find(By.CSS_SELECTOR, '.garment-box[data-index="0"]').get_attribute("aria-pressed") == "true"

    # a file that is not an image: the problem's message is shown, nothing crashes
    text = tmp_path / "not-a-photo.jpg"
    text.write_text("this is not a photo\n")
    _, done = body_state(driver)
    find(By.ID, "file").send_keys(str(text))
    assert wait_for(driver, ("error",), after=done) == "error"
    error = find(By.ID, "error")
    assert error.is_displayed() and "Unsupported media type" in error.text and "image/jpeg" in error.text
    assert not find(By.ID, "workspace").is_displayed()  # no broken photo left on screen
    assert "Traceback" not in driver.page_source


# ------------------------------------------------------- the released models
@pytest.fixture(scope="module")
def release_app(data_dir: Path, catalog_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as a fresh `make demo` serves it: the released classifier and detector
    (`models/`), installed as the demo installs them, over a 40-photo catalog."""
    from app.cli import build_analyzer
    from app.indexing import index_catalog
    from app.release import install_releases
    from indexer.catalog import read_catalog
    from indexer.factory import open_index

    var = tmp_path_factory.mktemp("release-var")
    settings = Settings(data_dir=data_dir, var_dir=var, model_dir=var / "models", release_dir=REPO / "models")
    assert len(install_releases(settings)) == 2, "the repository should release a classifier and a detector"
    index = open_index(settings)
    try:
        index_catalog(read_catalog(catalog_manifest), build_analyzer(settings), index, progress=False)
    finally:
        index.close()
    app = create_app(settings)
    url, stop = serve(app)
    yield url
    stop()
    app.extensions["eyepic"].index.close()


def test_fresh_demo_draws_detector_boxes_on_a_street_photo(driver, release_app: str, street_photo: Path) -> None:
    """A held-out CCP street photo: the released detector's garments are drawn as boxes."""
    from selenium.webdriver.common.by import By

    desktop(driver)
    driver.get(release_app + "/")
    wait_for(driver, ("idle",), after=0)
    _, done = body_state(driver)
    driver.find_element(By.ID, "file").send_keys(str(street_photo))
    assert wait_for(driver, ("ready", "error"), after=done) == "ready", driver.find_element(By.ID, "error").text
    boxes = driver.find_elements(By.CSS_SELECTOR, ".garment-box")
    detected = [b for b in boxes if "whole" not in (b.get_attribute("class") or "")]
    assert len(detected) >= 2, f"{len(boxes)} boxes, {len(detected)} from the detector"
    assert len(driver.find_elements(By.CSS_SELECTOR, ".garment-tab")) == len(boxes), "one tab per garment"
    assert driver.find_elements(By.CSS_SELECTOR, "#results .result")
    screenshot(driver, REPO / "var" / "reports" / "page-release.png")
