"""The web UI in a real headless Chromium against a real server (keys on every route): it
loads without console errors, classifies a drawn and an uploaded digit, turns a label into
images, marks modalities missing per sample, samples from the prior, keeps the API key in
memory only, and works behind a path-prefix reverse proxy. Screenshots go to the artifacts."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.adversarial.conftest import Server
from tests.ui.conftest import API_KEY
from tests.ui.page import Page, tid

pytestmark = pytest.mark.slow

ONE = [[(0, -60), (0, -20), (0, 20), (0, 60)]]
ZERO = [
    [
        (round(40 * math.sin(t * math.pi / 6)), round(-60 * math.cos(t * math.pi / 6)))
        for t in range(13)
    ]
]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def page(driver: WebDriver, server: Server, artifacts: Path) -> Page:
    return Page(driver, server.url, artifacts)


def _classes(page: Page) -> list[str]:
    return [e.text for e in page.all(f"{tid('output-label')} {tid('out-class')}")]


def _classify(page: Page, expected_rows: int = 1) -> list[str]:
    """Submit the generation form and wait for `expected_rows` label predictions."""
    page.one("gen-submit").click()
    page.wait(lambda: len(_classes(page)) == expected_rows and page.message().startswith("gen"))
    return _classes(page)


def _image_only_to_label(page: Page) -> None:
    """Sample 1: image observed, label missing; target: the label, from the posterior mean."""
    row = page.one("gen-row-0")
    page.tick("observed-image", True, row)
    page.tick("observed-label", False, row)
    page.tick("target-image", False)
    page.tick("target-label", True)
    page.tick("gen-mean", True)


def test_page_loads_every_view_without_console_errors(page: Page, server: Server) -> None:
    page.open("models", key=API_KEY)
    row = page.one("model-row-digits-demo")
    info = httpx.get(f"{server.url}/v1/models/digits-demo", headers=AUTH).json()
    assert page.one("model-parameters", row).text == f"{info['parameters']:,}"
    assert "mopoe" in row.text and "image (image 1×8×8)" in row.text
    assert "label (categorical 10)" in row.text and "shared: 8" in row.text
    assert page.one("model-source", row).text == "demo"
    assert Select(page.one("model-select")).first_selected_option.text == "digits-demo"
    page.screenshot("view-models")
    for view in ("generate", "latent", "samples", "jobs"):
        page.one(f"nav-{view}").click()
        page.wait(lambda v=view: page.one(f"view-{v}").is_displayed())
        assert not page.one("view-models").is_displayed()
        page.screenshot(f"view-{view}")
    assert page.errors() == []


def test_drawn_digits_are_classified(page: Page) -> None:
    page.open("generate", key=API_KEY)
    _image_only_to_label(page)
    canvas = page.one("pad-canvas", page.one("gen-row-0"))
    for strokes, expected in ((ONE, "1"), (ZERO, "0")):
        page.one("pad-clear").click()
        page.draw(canvas, strokes)
        page.wait(lambda: page.one("pad-preview").get_attribute("src"))
        assert _classify(page) == [expected]
        page.screenshot(f"generate-drawn-{expected}", focus="gen-results")
    assert page.errors() == []


def _digit_png(path: Path, server: Server) -> tuple[Path, int]:
    """A test-split digit the demo model classifies correctly through the API, as a PNG file."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index in range(len(digits.target) - 1, 0, -1):  # from the end: the test split
        pixels = np.round(digits.images[index] / 16 * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
        body = {
            "inputs": {"image": [base64.b64encode(buffer.getvalue()).decode()]},
            "targets": ["label"],
            "mean_latent": True,
        }
        answer = httpx.post(
            f"{server.url}/v1/models/digits-demo/generate", json=body, headers=AUTH, timeout=30
        ).json()
        label = int(digits.target[index])
        if label == 7 and answer["outputs"]["label"]["classes"] == [[label]]:
            path.write_bytes(buffer.getvalue())
            return path, label
    raise AssertionError("the demo model classifies no test 7 correctly")


def test_uploaded_digit_is_classified_as_its_label(page: Page, server: Server, tmp_path: Path):
    png, label = _digit_png(tmp_path / "digit.png", server)
    page.open("generate", key=API_KEY)
    _image_only_to_label(page)
    page.one("pad-upload").send_keys(str(png))
    page.wait(lambda: page.one("pad-preview").get_attribute("src"))
    sent = page.one("pad-preview").get_attribute("src").split(",", 1)[1]
    original = np.asarray(Image.open(png))
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(base64.b64decode(sent))).convert("L")), original
    )
    assert _classify(page) == [str(label)]
    page.screenshot("generate-uploaded", focus="gen-results")
    assert page.errors() == []


def test_chosen_label_produces_images(page: Page) -> None:
    page.open("generate", key=API_KEY)
    row = page.one("gen-row-0")
    page.tick("observed-image", False, row)
    page.tick("observed-label", True, row)
    Select(page.one("class-select", row)).select_by_value("3")
    page.tick("target-image", True)
    page.tick("target-label", False)
    page.set("gen-n", "4")
    page.set("gen-seed", "0")
    page.one("gen-submit").click()
    selector = f"{tid('output-image')} img"
    page.wait(lambda: len(page.all(selector)) == 4)
    widths = page.wait(lambda: (w := page.images_loaded(selector)) and min(w) > 0 and w)
    assert widths == [8, 8, 8, 8]
    page.screenshot("generate-label-3", focus="gen-results")
    assert page.errors() == []


def test_missing_modalities_per_sample(page: Page) -> None:
    """Sample 1 gives only a drawn 0, sample 2 only the label 3: both get both modalities."""
    page.open("generate", key=API_KEY)
    page.one("gen-add").click()
    first, second = page.one("gen-row-0"), page.one("gen-row-1")
    page.tick("observed-image", True, first)
    page.tick("observed-label", False, first)
    page.draw(page.one("pad-canvas", first), ZERO)
    page.tick("observed-image", False, second)
    page.tick("observed-label", True, second)
    Select(page.one("class-select", second)).select_by_value("3")
    page.tick("target-image", True)
    page.tick("target-label", True)
    page.tick("gen-mean", True)
    assert _classify(page, expected_rows=2) == ["0", "3"]
    assert len(page.all(f"{tid('output-image')} img")) == 2
    page.screenshot("generate-missing-per-sample", focus="gen-results")
    assert page.errors() == []


def test_unconditional_samples(page: Page) -> None:
    page.open("samples", key=API_KEY)
    assert Select(page.one("sample-sampler")).first_selected_option.text == "prior"
    page.set("sample-n", "12")
    page.one("sample-submit").click()
    selector = f"{tid('sample-results')} {tid('output-image')} img"
    page.wait(lambda: len(page.all(selector)) == 12)
    assert min(page.wait(lambda: page.images_loaded(selector))) == 8
    assert len(page.all(f"{tid('output-label')} {tid('out-class')}")) == 12
    page.screenshot("samples", focus="sample-results")
    assert page.errors() == []


def test_key_is_needed_and_kept_in_page_memory_only(page: Page) -> None:
    page.open("jobs")
    page.wait(lambda: "API key" in page.message())  # GET /v1/jobs: 401 without a key
    page.one("nav-samples").click()
    page.one("sample-submit").click()
    page.wait(lambda: "enter an API key" in page.message())
    page.set("api-key", API_KEY)
    page.one("key-set").click()
    assert page.one("api-key").get_attribute("value") == ""  # not left in the field
    page.one("sample-submit").click()
    page.wait(lambda: page.message() == "16 samples from prior")
    stored = page.driver.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie]"
    )
    assert stored == [0, 0, ""]
    errors = page.errors()
    assert errors and all("401" in e for e in errors), errors  # only the refused requests
    page.open("samples")  # a reload forgets the key
    assert page.one("key-state").text == "no key"


def test_works_behind_a_path_prefix(driver: WebDriver, proxy: str, artifacts: Path) -> None:
    driver.get("about:blank")
    driver.get(f"{proxy}/ui")  # the relative redirect keeps the prefix
    page = Page(driver, proxy, artifacts)
    page.wait(lambda: driver.current_url == f"{proxy}/ui/")
    page.wait(lambda: page.one("model-row-digits-demo"))
    page.open("generate", key=API_KEY)
    row = page.one("gen-row-0")
    page.tick("observed-image", False, row)
    page.tick("observed-label", True, row)
    page.tick("target-image", True)
    page.tick("target-label", False)
    page.one("gen-submit").click()
    page.wait(lambda: len(page.all(f"{tid('output-image')} img")) == 1)
    page.screenshot("prefix-generate", focus="gen-results")
    assert page.errors() == []


def test_server_errors_are_shown_with_their_field(page: Page) -> None:
    page.open("generate", key=API_KEY)
    row = page.one("gen-row-0")
    page.tick("observed-image", False, row)
    page.tick("observed-label", True, row)
    page.set("gen-n", "100000")
    page.one("gen-submit").click()
    page.wait(lambda: "MMVAE_MAX_N_SAMPLES" in page.message())
    assert page.message().startswith("n_samples")
    assert page.one("message").get_attribute("class") == "error"
    page.tick("observed-label", False, row)  # nothing observed: refused before any request
    page.one("gen-submit").click()
    page.wait(lambda: page.message() == "mark at least one modality observed")
    errors = page.errors()
    assert len(errors) == 1 and "422" in errors[0], errors
