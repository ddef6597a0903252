"""The latent-space view in a real browser: a PCA map of the digits test split coloured by
label, a clicked point decoded, an interpolation between two points; t-SNE maps too, and a
projection that is not installed is reported with the server's message."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.adversarial.conftest import Server
from tests.ui.conftest import API_KEY
from tests.ui.page import Page, tid

pytestmark = pytest.mark.slow


@pytest.fixture
def page(driver: WebDriver, server: Server, artifacts: Path) -> Page:
    return Page(driver, server.url, artifacts)


def _map(page: Page, n: int, method: str) -> None:
    page.set("map-n", str(n))
    Select(page.one("map-method")).select_by_value(method)
    page.one("map-submit").click()


def test_map_click_decode_and_interpolate(page: Page) -> None:
    page.open("latent", key=API_KEY)
    assert Select(page.one("map-space")).first_selected_option.text == "shared"
    _map(page, 300, "pca")
    page.wait(lambda: page.one("map-info").text.startswith("300 points, pca, space shared"))
    assert "explained variance" in page.one("map-info").text
    legend = [e.text for e in page.all(f"{tid('map-legend')} span:not(.swatch)")]
    assert legend == [str(i) for i in range(10)]

    canvas = page.one("map-canvas")
    page.draw(canvas, [[(0, 0)]])  # a click: the nearest point becomes A and is decoded
    page.wait(lambda: page.one("map-a").text.startswith("point "))
    decoded = f"{tid('map-decoded')} {tid('output-image')} img"
    page.wait(lambda: page.images_loaded(decoded) == [8])
    assert len(page.all(f"{tid('map-decoded')} {tid('out-class')}")) == 1
    page.draw(canvas, [[(150, -150)]])
    page.wait(lambda: page.one("map-b").text.startswith("point "))
    assert page.one("map-a").text != page.one("map-b").text

    page.set("interp-steps", "6")
    page.one("interp-go").click()
    strip = f"{tid('interp-results')} {tid('output-image')} img"
    page.wait(lambda: page.images_loaded(strip) == [8] * 6)
    captions = [
        e.text for e in page.all(f"{tid('interp-results')} {tid('output-image')} figcaption")
    ]
    assert captions == ["0.00", "0.20", "0.40", "0.60", "0.80", "1.00"]
    page.screenshot("latent-map", focus="interp-results")
    assert page.errors() == []


def test_tsne_map_and_missing_projection(page: Page) -> None:
    page.open("latent", key=API_KEY)
    _map(page, 150, "tsne")
    page.wait(lambda: page.one("map-info").text.startswith("150 points, tsne"), timeout=120)
    try:
        import umap  # noqa: F401
    except ImportError:
        _map(page, 50, "umap")
        page.wait(lambda: "umap-learn" in page.message())
        assert page.one("message").get_attribute("class") == "error"
        errors = page.errors()
        assert len(errors) == 1 and "422" in errors[0], errors
    page.screenshot("latent-tsne")
