"""Training jobs from the UI's form, in a real browser against a real server and worker: the
job is followed live (fetch-based server-sent events, with the key), reaches `succeeded`, its
loss curves are drawn and its model is loaded; another job is cancelled from the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.adversarial.conftest import Server
from tests.ui.conftest import API_KEY
from tests.ui.page import Page, tid

pytestmark = pytest.mark.slow
JOB_S = 240  # a 2-epoch digits job takes seconds; a loaded CI machine gets more


@pytest.fixture
def page(driver: WebDriver, server: Server, artifacts: Path) -> Page:
    return Page(driver, server.url, artifacts)


def _fill(page: Page, name: str, epochs: int) -> None:
    """A tiny MVAE on digits."""
    page.set("job-type", "mvae")
    page.set("job-latent", "4")
    page.set("job-hidden", "16")
    page.set("job-epochs", str(epochs))
    page.set("job-batch", "64")
    page.set("job-name", name)


def test_job_from_the_form_succeeds_and_its_model_loads(page: Page) -> None:
    page.open("jobs", key=API_KEY)
    _fill(page, "ui-job", epochs=2)
    page.one("job-submit").click()
    page.wait(lambda: page.one("job-id").text)
    job_id = page.one("job-id").text
    assert page.message() == f"submitted job {job_id}"
    page.wait(lambda: page.one("job-state").text == "succeeded", timeout=JOB_S)
    assert page.one("job-progress").get_attribute("value") == "1"
    assert "published ui-job@1" in page.one("job-detail").text
    page.wait(lambda: "train loss: 2" in (page.one("job-chart").get_attribute("data-points") or ""))
    assert "eval loss: 2" in page.one("job-chart").get_attribute("data-points")
    assert page.one("job-cancel").get_attribute("disabled") is not None
    page.screenshot("jobs-succeeded", focus="job-chart")

    page.one("job-load").click()
    page.wait(lambda: page.message() == "loaded ui-job (store ui-job@1)")
    assert Select(page.one("model-select")).first_selected_option.text == "ui-job"
    page.one("nav-models").click()
    assert page.one("model-source", page.one("model-row-ui-job")).text == "store ui-job@1"
    page.one("nav-samples").click()  # the new model serves
    page.set("sample-n", "3")
    page.one("sample-submit").click()
    page.wait(lambda: page.message() == "3 samples from prior")
    page.screenshot("jobs-model-loaded", focus="sample-results")

    page.one("nav-models").click()  # the load form: the same stored model under another name
    page.set("load-id", "ui-job")
    page.set("load-version", "1")
    page.set("load-name", "ui-job-copy")
    page.one("load-submit").click()
    page.wait(lambda: page.message() == "loaded ui-job-copy (store ui-job@1)")
    row = page.one("model-row-ui-job-copy")
    page.screenshot("models-loaded-from-store")
    page.one("model-unload", row).click()
    page.wait(lambda: page.message() == "unloaded ui-job-copy")
    assert not page.all(tid("model-row-ui-job-copy"))
    assert page.errors() == []


def test_job_is_cancelled_from_the_page(page: Page) -> None:
    page.open("jobs", key=API_KEY)
    _fill(page, "ui-cancelled", epochs=500)
    page.one("job-submit").click()
    page.wait(lambda: page.one("job-state").text == "running", timeout=JOB_S)
    page.one("job-cancel").click()
    page.wait(lambda: page.one("job-state").text == "cancelled", timeout=JOB_S)
    assert page.one("job-load").get_attribute("hidden") is not None  # nothing to load
    page.one("jobs-refresh").click()
    job_id = page.one("job-id").text
    page.wait(lambda: "cancelled" in page.one(f"job-row-{job_id}").text)
    page.screenshot("jobs-cancelled")
    assert page.errors() == []
