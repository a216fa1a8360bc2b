"""The operator's page in a real browser: Debian's chromium, driven through chromedriver by Selenium, against the
real daemon (`stamdata-importer run` as a subprocess, on SQLite) after a real import and after a refused drop.

What is asserted is what a person sees: the state of each register (the locked one in red, with the refusal's
`file:line: rule` and the unlock command), one chart point per run with the refusal marked, the queue and why it
waits, the feed's head, a page that reads without JavaScript and fits a narrow screen, and a browser console
without errors. The operator then unlocks the register from the page, as a person would (token, confirmation,
button), and the held dataset is imported. Screenshots are saved under the test's temporary directory; the one of
the locked register is also copied to /tmp/operator-page.png for a person to look at.

Without chromium and chromedriver these tests skip with the reason, except where STAMDATA_TEST_REQUIRE_BROWSER or
CI is set (`.ci/run` installs both and sets it): there a missing browser fails them.
"""

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.conftest import Databases
from tests.daemon.harness import DaemonProcess, status_rows, successes, wait_for
from tests.http.server import import_sample, serve
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump

REQUIRE_BROWSER = bool(os.environ.get("STAMDATA_TEST_REQUIRE_BROWSER") or os.environ.get("CI"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SHOWN_TO_A_PERSON = Path("/tmp/operator-page.png")
REFUSED = [FIRST[0], "0C3D4;12345;X;Y;5166"]  # line 2: a CPR that is not 10 digits
CPR_LIKE = re.compile(r"(?<!\d)\d{6}-?\d{4}(?!\d)")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        reason = ("no headless browser: these tests need Debian's chromium and chromium-driver "
                  "(apt-get install chromium chromium-driver)")
        if REQUIRE_BROWSER:
            pytest.fail(f"a browser is required here (STAMDATA_TEST_REQUIRE_BROWSER or CI is set): {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions", "--disable-sync",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The given driver, never one Selenium Manager would fetch: the test machine may be offline.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """What the browser's console said at level error since it was last asked (reading empties it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def load(driver: WebDriver, url: str) -> None:
    console_errors(driver)  # forget what earlier pages said
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 15, f"{url} to load")


def screenshot(driver: WebDriver, path: Path) -> Path:
    """The whole page, not only the window: the window is made as tall as the page for the picture."""
    width = driver.get_window_size()["width"]
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height, 600) + 140, 6000))
    try:
        assert driver.save_screenshot(str(path)), path
    finally:
        driver.set_window_size(width, 900)
    return path


def row(driver: WebDriver, register: str) -> WebElement:
    return driver.find_element(By.ID, f"register-{register}")


def points(driver: WebDriver, register: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f"#history-{register} svg circle.point")


def rgb(css_color: str) -> tuple[int, int, int]:
    red, green, blue = (int(part) for part in re.findall(r"\d+", css_color)[:3])
    return red, green, blue


def looks_red(css_color: str) -> bool:
    red, green, blue = rgb(css_color)
    return red > 150 and red > 2 * green and red > 2 * blue


def drop(inbox_dir: Path, name: str, lines: list[str]) -> None:
    """As a supplier delivers: written under a hidden name, then moved in whole."""
    write_dump(inbox_dir, f".{name}.part", lines).rename(inbox_dir / name)


def test_an_operator_sees_the_imports_and_the_refused_drop_and_unlocks_the_register_from_the_page(
    browser: WebDriver, sqlite_databases: Databases, tmp_path: Path
) -> None:
    databases = sqlite_databases
    daemon = DaemonProcess(databases, tmp_path / "logs").start()
    try:
        printed = re.search(r"Bearer (stm_[A-Za-z0-9_-]+)", daemon.log_text())
        assert printed is not None, "the local development client (every scope, operator too)"
        queue = databases.inbox / "autorisation"

        # A real import.
        drop(queue, "20261120AutDK.csv", FIRST)
        wait_for(lambda: successes(databases) == ["20261120AutDK.csv"], 30, "the first import")
        load(browser, daemon.base + "/")
        assert "OK" in browser.title
        state = row(browser, "autorisation").find_element(By.CSS_SELECTOR, ".badge")
        assert state.text == "OK" and not looks_red(state.value_of_css_property("background-color"))
        assert len(points(browser, "autorisation")) == 1
        head = browser.find_element(By.XPATH, "//section[@id='feed']//tr[th[normalize-space()="
                                              "'autorisationsregisteret/autorisation/v1']]/td[1]").text
        assert re.fullmatch(r"\d{20}", head), head
        assert console_errors(browser) == []
        screenshot(browser, tmp_path / "after-import.png")

        # Another import, then a refused drop locks the register; a good dataset behind it is held.
        drop(queue, "20261121AutDK.csv", SECOND)
        wait_for(lambda: len(successes(databases)) == 2, 30, "the second import")
        drop(queue, "20261122AutDK.csv", REFUSED)
        wait_for(lambda: (queue / "LOCKED").exists(), 30, "the refused drop to lock the register")
        wait_for(lambda: len(status_rows(databases)) == 3, 30, "the refusal's status row")
        drop(queue, "20261123AutDK.csv", FIRST)

        load(browser, daemon.base + "/")
        assert browser.title.startswith("ERROR")
        locked = row(browser, "autorisation")
        assert "state-locked" in (locked.get_attribute("class") or "")
        badge = locked.find_element(By.CSS_SELECTOR, ".badge")
        assert badge.text == "locked" and looks_red(badge.value_of_css_property("background-color"))
        assert looks_red(locked.find_element(By.CSS_SELECTOR, ".reason").value_of_css_property("color"))
        assert looks_red(locked.find_element(By.TAG_NAME, "th").value_of_css_property("border-left-color"))
        assert ("dataset 20261122AutDK.csv refused (cpr): 20261122AutDK.csv:2: cpr: column 2 (cpr) must be 10 digits"
                in locked.text)
        assert "stamdata-importer unlock autorisation" in locked.text
        assert "FAILURE 20261122AutDK.csv" in locked.text.replace("\n", " "), "the last attempt"
        calm = row(browser, "doseringsforslag").find_element(By.CSS_SELECTOR, ".badge")
        assert calm.text == "OK" and not looks_red(calm.value_of_css_property("background-color"))

        runs = status_rows(databases)
        drawn = points(browser, "autorisation")
        assert len(drawn) == len(runs) == 3, "one chart point per run"
        assert [point.get_attribute("class") for point in drawn] == [
            "point point-success", "point point-success", "point point-refused"]
        assert looks_red(drawn[2].value_of_css_property("fill"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#history-autorisation svg .mark-refused")) == 1
        assert all(point.is_displayed() for point in drawn)

        held = browser.find_element(By.XPATH, "//section[@id='queue']//tr[th[normalize-space()='20261123AutDK.csv']]")
        assert "held: the register is locked" in held.text
        for href in ("status", "metrics", "openapi.json", "docs"):
            link = browser.find_element(By.CSS_SELECTOR, f"nav a[href='{href}']")
            assert link.get_attribute("href") == f"{daemon.base}/{href}" and link.is_displayed()
        assert not CPR_LIKE.search(browser.find_element(By.TAG_NAME, "body").text), "no personal data on the page"
        assert console_errors(browser) == []
        shutil.copyfile(screenshot(browser, tmp_path / "operator-page.png"), SHOWN_TO_A_PERSON)

        # Without JavaScript the state table reads the same; the unlock form (it needs the script) stays hidden.
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        try:
            load(browser, daemon.base + "/")
            assert "dataset 20261122AutDK.csv refused (cpr)" in row(browser, "autorisation").text
            assert not browser.find_element(By.CSS_SELECTOR, "form.unlock-form").is_displayed()
            assert "stamdata-importer unlock autorisation" in browser.find_element(By.ID, "unlock-autorisation").text
        finally:
            browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})

        # A narrow screen: nothing wider than the window but the chart, which scrolls in its own frame.
        browser.set_window_size(390, 900)
        try:
            load(browser, daemon.base + "/")
            page = "document.documentElement"
            assert browser.execute_script(f"return {page}.scrollWidth <= {page}.clientWidth"), "no sideways scrolling"
            assert row(browser, "autorisation").find_element(By.CSS_SELECTOR, ".badge").is_displayed()
            screenshot(browser, tmp_path / "operator-page-narrow.png")
        finally:
            browser.set_window_size(1280, 900)

        # The operator unlocks from the page: token, the register's name as confirmation, the button.
        load(browser, daemon.base + "/")
        form = browser.find_element(By.CSS_SELECTOR, "#unlock-autorisation form.unlock-form")
        assert form.is_displayed(), "the script shows the form"
        form.find_element(By.NAME, "token").send_keys(printed.group(1))
        form.find_element(By.NAME, "confirm").send_keys("autorisation")
        form.find_element(By.TAG_NAME, "button").click()

        def unlocked() -> bool:
            try:
                return "state-locked" not in (row(browser, "autorisation").get_attribute("class") or "")
            except WebDriverException:  # the page is reloading
                return False

        wait_for(unlocked, 15, "the page to show the register unlocked")
        assert not (queue / "LOCKED").exists()
        assert daemon.saw("register unlocked by an operator", client="local-dev", register="autorisation")
        wait_for(lambda: "20261123AutDK.csv" in successes(databases), 30, "the held dataset to be imported")
        load(browser, daemon.base + "/")
        assert row(browser, "autorisation").find_element(By.CSS_SELECTOR, ".badge").text == "OK"
        assert len(points(browser, "autorisation")) == len(status_rows(databases)) == 4
        assert console_errors(browser) == []
        screenshot(browser, tmp_path / "after-unlock.png")
    finally:
        daemon.close()


def test_the_api_documentation_renders_from_files_in_the_package(
    browser: WebDriver, sqlite_databases: Databases, tmp_path: Path
) -> None:
    import_sample(sqlite_databases, tmp_path)
    with serve(sqlite_databases) as served:
        load(browser, served.base + "/docs")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"), 15, "Swagger UI")
        assert "stamdata importer" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".opblock"), 15, "the operations")
        paths = {element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert "/autorisation/v1/persons/{cpr}" in paths and "/status" in paths
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(function (entry) { return entry.name; })")
        assert loaded and all(url.startswith(served.base + "/") for url in loaded), loaded
        assert console_errors(browser) == []
        screenshot(browser, tmp_path / "docs.png")

        load(browser, served.base + "/")  # `serve`: the page without an importer
        assert browser.find_elements(By.CSS_SELECTOR, "form.unlock-form") == []
        assert len(points(browser, "autorisation")) == 2 and len(points(browser, "doseringsforslag")) == 1
        assert console_errors(browser) == []
