"""Fixtures for the service tests: tiny models in a temporary store, app and client factories."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from core.models import build_model
from core.models.base import MultimodalVAE
from core.store import ModelStore
from service.app import create_app
from service.settings import Settings
from tests.core.conftest import hub_server, new_repo  # noqa: F401  (loopback Hub fixtures)

TINY = {
    "model_type": "mvae",
    "latent_dim": 4,
    "encoder": {"kind": "mlp", "hidden": [32]},
    "decoder": {"kind": "mlp", "hidden": [32]},
    "modalities": [
        {"name": "image", "shape": [1, 8, 8], "likelihood": {"kind": "bernoulli"}},
        {"name": "label", "shape": [10], "likelihood": {"kind": "categorical"}},
        {"name": "vec", "shape": [3], "likelihood": {"kind": "normal"}},
    ],
}
KEY = "test-key-0123456789"


def tiny_model(seed: int = 0) -> MultimodalVAE:
    torch.manual_seed(seed)
    return build_model(TINY).eval()


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with `tiny` (versions 1 and 2) and `tiny-gmm` (with a fitted GMM sampler)."""
    from core.data import MultimodalDataset
    from core.samplers import build_sampler, save_sampler

    root = tmp_path_factory.mktemp("store")
    store = ModelStore(root)
    store.save(tiny_model(0), "tiny", "1")
    store.save(tiny_model(1), "tiny", "2")
    model = tiny_model(2)
    g = torch.Generator().manual_seed(0)
    data = MultimodalDataset(
        {
            "image": (torch.rand(64, 1, 8, 8, generator=g) > 0.5).float(),
            "label": torch.nn.functional.one_hot(torch.randint(10, (64,), generator=g), 10).float(),
            "vec": torch.randn(64, 3, generator=g),
        }
    )
    sampler = build_sampler("gmm", n_components=2, max_iter=20).fit(model, data)
    info = store.save(model, "tiny-gmm", "1")
    save_sampler(sampler, info.path)
    return root


def make_settings(store_dir: Path, tmp: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "preload": ["store:tiny"],
        "data_dir": tmp,
        "store_dir": store_dir,
        "batch_wait_ms": 2,
        "log_json": False,
    }
    base.update(overrides)
    return Settings(**base)


def wait_ready(client: TestClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return
        if any(v.startswith("failed") for v in r.json()["checks"].values()):
            raise AssertionError(r.json())
        time.sleep(0.02)
    raise AssertionError("not ready in time")


ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client(store_dir: Path, tmp_path: Path) -> Iterator[ClientFactory]:
    """`with make_client(**settings) as client:` a started app (lifespan run, models ready)."""

    @contextmanager
    def factory(ready: bool = True, **overrides: Any) -> Iterator[TestClient]:
        app = create_app(make_settings(store_dir, tmp_path, **overrides))
        with TestClient(app, raise_server_exceptions=False) as client:
            if ready:
                wait_ready(client)
            yield client

    yield factory


@pytest.fixture
def client(make_client: ClientFactory) -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
