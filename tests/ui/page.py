"""Driving the UI page from the tests: open it, find elements by `data-testid`, wait, draw,
read the browser console, save screenshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 30


def tid(name: str) -> str:
    """CSS selector of a `data-testid`."""
    return f'[data-testid="{name}"]'


class Page:
    """The UI in one browser tab."""

    def __init__(self, driver: WebDriver, base: str, artifacts: Path) -> None:
        self.driver, self.base, self.artifacts = driver, base.rstrip("/"), artifacts

    def open(self, view: str = "models", key: str | None = None) -> Page:
        """Load the page afresh (any key in memory is gone), wait for the models, set `key`,
        then go to `view`."""
        self.driver.get("about:blank")
        self.console()  # drop what earlier pages logged
        self.driver.get(f"{self.base}/ui/")
        self.wait(lambda: self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        if key is not None:
            self.one("api-key").send_keys(key)
            self.one("key-set").click()
            self.wait(lambda: self.one("key-state").text.startswith("key set"))
        self.one(f"nav-{view}").click()
        self.wait(lambda: self.one(f"view-{view}").is_displayed())
        return self

    def one(self, name: str, within: WebElement | None = None) -> WebElement:
        return (within or self.driver).find_element(By.CSS_SELECTOR, tid(name))

    def all(self, selector: str, within: WebElement | None = None) -> list[WebElement]:
        return (within or self.driver).find_elements(By.CSS_SELECTOR, selector)

    def wait(self, condition: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        """The first truthy `condition()` (stale elements count as not yet)."""

        def attempt(_: WebDriver) -> Any:
            try:
                return condition()
            except StaleElementReferenceException:
                return False

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(attempt)
        except TimeoutException:
            said = self.driver.execute_script(
                "return document.querySelector('[data-testid=message]')?.textContent"
            )
            raise AssertionError(f"timed out after {timeout} s; the page says {said!r}") from None

    def set(self, name: str, value: str, within: WebElement | None = None) -> None:
        field = self.one(name, within)
        field.clear()
        field.send_keys(value)

    def tick(self, name: str, on: bool, within: WebElement | None = None) -> None:
        box = self.one(name, within)
        if box.is_selected() != on:
            box.click()

    def draw(self, canvas: WebElement, strokes: list[list[tuple[int, int]]]) -> None:
        """Pointer strokes on `canvas`, in pixels from its centre."""
        for stroke in strokes:
            chain = ActionChains(self.driver).move_to_element_with_offset(canvas, *stroke[0])
            chain.click_and_hold()
            for point in stroke[1:]:
                chain.move_to_element_with_offset(canvas, *point)
            chain.release().perform()

    def message(self) -> str:
        return self.one("message").text

    def images_loaded(self, selector: str) -> list[int]:
        """naturalWidth of every <img> matching `selector` (0: not a decodable image)."""
        script = (
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(i => i.complete ? i.naturalWidth : -1)"
        )
        return self.driver.execute_script(script, selector)

    def console(self) -> list[dict[str, Any]]:
        """Browser console entries since the last call."""
        return self.driver.get_log("browser")

    def errors(self) -> list[str]:
        return [e["message"] for e in self.console() if e["level"] == "SEVERE"]

    def screenshot(self, name: str, focus: str | None = None) -> Path:
        """Save `<artifacts>/<name>.png`, scrolled so the `focus` test id is in view."""
        if focus is not None:
            self.driver.execute_script(
                "arguments[0].scrollIntoView({block: 'end'})", self.one(focus)
            )
        path = self.artifacts / f"{name}.png"
        time.sleep(0.2)  # let the last paint land
        assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        return path
