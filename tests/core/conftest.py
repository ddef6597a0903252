"""Fixtures for the Hub and store tests: tiny trained models, a loopback Hub server, a listener."""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import torch
from huggingface_hub import close_session, set_client_factory
from huggingface_hub.utils._http import default_client_factory

from core.data.batch import Batch
from core.models import MVAE, MultimodalVAE
from tests.core.hub_server import GitRepo, HubServer, Listener, RecordedHub

TINY = {
    "modalities": [
        {"name": "image", "shape": [1, 8, 8], "likelihood": {"kind": "bernoulli"}},
        {"name": "label", "shape": [10], "likelihood": {"kind": "categorical"}},
    ],
    "latent_dim": 4,
    "encoder": {"kind": "mlp", "hidden": [16]},
    "decoder": {"kind": "mlp", "hidden": [16]},
}
TRAINING_INFO = {"dataset": "digits", "epochs": 1, "final_metrics": {"elbo": -42.5, "loss": 42.5}}


def tiny_batch(n: int = 6, seed: int = 0) -> Batch:
    """Random binary images and one-hot labels; the second modality missing for one sample."""
    g = torch.Generator().manual_seed(seed)
    image = (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float()
    label = torch.nn.functional.one_hot(torch.randint(10, (n,), generator=g), 10).float()
    masks = {"image": torch.ones(n, dtype=torch.bool), "label": torch.ones(n, dtype=torch.bool)}
    masks["label"][0] = False
    return Batch({"image": image, "label": label}, masks)


def train_tiny(seed: int) -> MultimodalVAE:
    """An MVAE after two Adam steps: weights that differ from any fresh initialisation."""
    torch.manual_seed(seed)
    model = MVAE(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(2):
        opt.zero_grad()
        model(tiny_batch(seed=seed + step)).loss.backward()
        opt.step()
    return model.eval()


def outputs(model: MultimodalVAE) -> dict[str, torch.Tensor]:
    """Cross-modal generation and unconditional samples under fixed generators."""
    gen = model.generate(
        tiny_batch(seed=99),
        given=["image"],
        n_samples=2,
        generator=torch.Generator().manual_seed(1),
    )
    smp = model.sample(5, generator=torch.Generator().manual_seed(2))
    return {**{f"gen_{k}": v for k, v in gen.items()}, **{f"sample_{k}": v for k, v in smp.items()}}


def assert_same_outputs(a: MultimodalVAE, b: MultimodalVAE) -> None:
    """Same weights, and bit-identical generations and samples under the same generators."""
    weights_a, weights_b = a.state_dict(), b.state_dict()
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), f"weights differ: {key}"
    out_a, out_b = outputs(a), outputs(b)
    assert out_a.keys() == out_b.keys()
    for key in out_a:
        assert torch.equal(out_a[key], out_b[key]), key


@pytest.fixture(scope="session")
def tiny_model() -> MultimodalVAE:
    return train_tiny(seed=0)


@pytest.fixture(scope="session")
def other_model() -> MultimodalVAE:
    return train_tiny(seed=1)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model: MultimodalVAE, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_model` saved with training.json (so the card has datasets and metrics)."""
    return tiny_model.save_pretrained(tmp_path_factory.mktemp("tiny"), TRAINING_INFO)


@pytest.fixture(scope="session")
def other_model_dir(other_model: MultimodalVAE, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return other_model.save_pretrained(tmp_path_factory.mktemp("other"))


@pytest.fixture(scope="session")
def sampler_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of `tiny_model` with a fitted GMM sampler saved in its `sampler/` folder."""
    from core.data.dataset import MultimodalDataset
    from core.samplers import build_sampler

    model = MultimodalVAE.from_pretrained(tiny_model_dir)
    batch = tiny_batch(n=12, seed=5)
    data = MultimodalDataset(batch.data, batch.masks)
    g = torch.Generator().manual_seed(0)
    model.sampler = build_sampler("gmm", n_components=2).fit(model, data, generator=g)
    return model.save_pretrained(tmp_path_factory.mktemp("sampled"))


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """olah serving local git repositories on loopback (skipped when olah or git is missing)."""
    if importlib.util.find_spec("olah") is None:
        pytest.skip("olah (dev dependency) is not installed")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    server = HubServer(tmp_path_factory.mktemp("hub"))
    yield server
    server.stop()


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """A fresh Hugging Face cache for one test."""
    return tmp_path / "hf-cache"


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback port that records whether any client connected to it."""
    sock = Listener()
    yield sock
    sock.close()


@pytest.fixture
def new_repo(hub_server: HubServer) -> tuple[str, GitRepo]:
    """An empty git repository served by `hub_server`, under a fresh `org/<name>` id."""
    repo_id = f"org/model-{uuid.uuid4().hex[:8]}"
    return repo_id, hub_server.create_repo(repo_id)


@pytest.fixture
def recorded_hub() -> Iterator[RecordedHub]:
    hub = RecordedHub()

    def factory() -> httpx2.Client:
        default = default_client_factory()
        return httpx2.Client(
            transport=httpx2.MockTransport(hub), event_hooks=default.event_hooks, timeout=5
        )

    set_client_factory(factory)
    close_session()
    yield hub
    set_client_factory(default_client_factory)
    close_session()
