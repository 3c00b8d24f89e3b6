"""The search page at / in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): a typed query shows the API's hits, with the tokens each shares with the query highlighted.
Writes docs/search-page.png, the README's screenshot. Slow: run with `pytest -m slow` (.ci/run does)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retriever.serve.server import ServerProcess

from ...conftest import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = ROOT / "docs" / "search-page.png"
# Without the background-networking flags Chromium keeps calling home, which a closed network refuses.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1100,900"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("headless Chromium is not installed: `apt-get install chromium chromium-driver` (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_a_typed_query_shows_the_hits_with_their_shared_tokens_highlighted(browser, demo_index, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import Select, WebDriverWait

    expected = demo_index.search("honey bees", k=5)
    with ServerProcess(["--index", str(demo_index.path), "--quiet"], log=str(tmp_path / "log")) as server:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert [o.text for o in Select(browser.find_element(By.ID, "mode")).options] == list(demo_index.modes)
        Select(browser.find_element(By.ID, "k")).select_by_visible_text("5")
        box = browser.find_element(By.ID, "q")
        box.send_keys("honey bees")
        browser.find_element(By.ID, "go").click()
        wait.until(until.presence_of_all_elements_located((By.CSS_SELECTOR, "article.hit")))
        hits = browser.find_elements(By.CSS_SELECTOR, "article.hit")
        assert [h.get_attribute("data-id") for h in hits] == [h.id for h in expected]
        first = hits[0]
        assert expected[0].id == "bees" and "Honey bees" in first.find_element(By.TAG_NAME, "h2").text
        marked = {m.text.lower() for m in first.find_elements(By.CSS_SELECTOR, ".snippet mark")}
        assert {"honey", "bees"} <= marked  # the tokens it shares with the query, highlighted in the snippet
        assert marked <= {t["token"].lower() for t in expected[0].tokens} | {"bee", "honey", "bees"}
        shown = float(first.find_element(By.CSS_SELECTOR, ".score").text.removeprefix("score "))
        assert shown == pytest.approx(expected[0].score, rel=1e-3)  # the fused score, to 4 digits
        legs = first.find_element(By.CSS_SELECTOR, ".meta").text
        assert all(leg in legs for leg in expected[0].scores)  # and every leg's own
        assert browser.find_element(By.ID, "status").text.startswith("5 hits")
        # a bad filter is shown as the server's message, not a blank page
        browser.find_element(By.ID, "filter").send_keys('{"topic": {"near": 1}}')
        browser.find_element(By.ID, "go").click()
        wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
        assert "unknown operator 'near'" in browser.find_element(By.ID, "error").text
        browser.find_element(By.ID, "filter").clear()
        browser.find_element(By.ID, "go").click()
        wait.until(lambda d: not d.find_element(By.ID, "error").is_displayed())
        wait.until(until.presence_of_all_elements_located((By.CSS_SELECTOR, "article.hit")))
        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
