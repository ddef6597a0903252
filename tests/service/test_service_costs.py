"""Every inference request's cost (answer values, rendered PNG pixels, model work) is checked
against the settings before any work, and heavy requests run in a lane of their own."""

from __future__ import annotations

import pytest

from core.models.config import ModalitySpec
from service.costs import Cost, output_cost
from service.errors import ApiError
from service.settings import Settings

GEN = "/v1/models/tiny/generate"
LL = "/v1/models/tiny/log-likelihood"
IMAGE = ModalitySpec(name="image", shape=[1, 8, 8], kind="image")
LABEL = ModalitySpec(name="label", shape=[10], kind="categorical")


def test_output_cost_counts_values_rendered_pixels_and_work() -> None:
    cost = output_cost([IMAGE, LABEL], draws=6, passes=7, parameters=100, png_scale=3, field="n")
    assert cost == Cost(values=6 * (64 + 10), pixels=6 * 64 * 9, work=700, field="n")
    assert output_cost([IMAGE], 6, 7, 100, None, "n").pixels == 0  # numbers only: no PNG


@pytest.mark.parametrize(
    ("cost", "setting"),
    [
        (Cost(11, 0, 0, "n"), "MMVAE_MAX_OUTPUT_VALUES"),
        (Cost(0, 11, 0, "n"), "MMVAE_MAX_PNG_PIXELS"),
        (Cost(0, 0, 11, "n"), "MMVAE_MAX_REQUEST_WORK"),
    ],
)
def test_each_measure_over_its_limit_is_a_422_naming_field_and_setting(cost, setting) -> None:
    limits = Settings(max_output_values=10, max_png_pixels=10, max_request_work=10)
    with pytest.raises(ApiError) as err:
        cost.check(limits)
    assert err.value.status == 422 and err.value.field.startswith("n (output")
    assert setting in err.value.message and "11 exceeds the limit of 10" in err.value.message
    assert Cost(10, 10, 10, "n").check(limits).work == 10


def test_png_answers_count_their_upscaled_pixels(make_client) -> None:
    body = {"inputs": {"label": [1, 2]}, "targets": ["image"], "n_samples": 2, "png_scale": 4}
    limit = 2 * 2 * 64 * 16  # rows × draws × pixels × scale²
    with make_client(max_png_pixels=limit) as client:
        assert client.post(GEN, json={**body, "encoding": "png"}).status_code == 200
        png = client.post(GEN, json=body, headers={"Accept": "image/png"})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        over = client.post(GEN, json={**body, "png_scale": 5, "encoding": "png"})
        assert over.status_code == 422 and "MMVAE_MAX_PNG_PIXELS" in over.text
        over = client.post(GEN, json={**body, "png_scale": 5}, headers={"Accept": "image/png"})
        assert over.status_code == 422
        assert client.post(GEN, json={**body, "png_scale": 5}).status_code == 200  # numbers


def test_likelihood_work_scales_with_k_rows_and_the_model(make_client) -> None:
    with make_client() as client:
        parameters = sum(
            p.numel() for p in client.app.state.registry.get("tiny").model.parameters()
        )
    body = {"inputs": {"label": [1, 2, 3], "vec": [[0.0, 0.0, 0.0]] * 3}, "k": 10}
    with make_client(max_request_work=3 * 10 * parameters) as client:
        assert client.post(LL, json=body).status_code == 200
        over = client.post(LL, json={**body, "k": 11})
        assert over.status_code == 422, over.text
        assert over.json()["error"]["field"].startswith("k")
        assert "MMVAE_MAX_REQUEST_WORK" in over.json()["error"]["message"]
        given = {**body, "given": ["label"]}  # conditional: twice the passes
        assert client.post(LL, json=given).status_code == 422
        assert client.post(LL, json={**given, "k": 5}).status_code == 200


def test_heavy_requests_run_in_their_own_lane(make_client) -> None:
    with make_client(heavy_request_work=1) as client:
        assert client.post(LL, json={"inputs": {"label": [1]}, "k": 2}).status_code == 200
        assert client.post(GEN, json={"inputs": {"label": [1]}}).status_code == 200
        text = client.get("/metrics").text
    assert 'op="log-likelihood/heavy"' in text and 'op="generate/heavy"' in text
    with make_client() as client:  # the default threshold: these are light
        client.post(GEN, json={"inputs": {"label": [1]}})
        text = client.get("/metrics").text
    assert 'op="generate"' in text and "/heavy" not in text


def test_monte_carlo_inference_counts_its_steps_in_the_work(tmp_path) -> None:
    """JNF given two of three modalities samples by HMC: (n_lf + 1) × mcmc_steps passes a draw."""
    import torch
    from fastapi.testclient import TestClient

    from core.models import build_model
    from core.store import ModelStore
    from service.app import create_app
    from tests.service.conftest import TINY, make_settings, wait_ready

    torch.manual_seed(0)
    config = {**TINY, "model_type": "jnf", "flow_hidden": [8], "mcmc_steps": 3, "n_lf": 1}
    model = build_model(config).eval()
    ModelStore(tmp_path / "models").save(model, "jnf", "1")
    parameters = sum(p.numel() for p in model.parameters())
    body = {"inputs": {"label": [1], "vec": [[0.0, 0.1, 0.2]]}, "n_samples": 2}
    for limit, expected in ((2 * 6 * parameters, 200), (2 * 6 * parameters - 1, 422)):
        settings = make_settings(tmp_path / "models", tmp_path, preload=["store:jnf"],
                                 jobs_enabled=False, max_request_work=limit)  # fmt: skip
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            wait_ready(client)
            r = client.post("/v1/models/jnf/generate", json=body)
            assert r.status_code == expected, r.text
            alone = {"inputs": {"label": [1]}, "n_samples": 2}  # one modality: one pass a draw
            assert client.post("/v1/models/jnf/generate", json=alone).status_code == 200
