"""Networks of your own: registered by decorator or an installed package's entry point, named in
configs with JSON arguments, saved as safetensors, and refused clearly where the code is absent."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import close_session, set_client_factory
from huggingface_hub.utils._http import default_client_factory
from pydantic import ValidationError
from torch import Tensor, nn

from core.models import build_model
from core.models.pretrained import load_folder, load_from_hub
from core.models.pretrained import push as push_to_hub
from core.nn import NETWORKS, NetworkError, build_network, register_network, validate_network_spec
from tests.adversarial.conftest import serve
from tests.core.conftest import assert_same_outputs
from tests.core.hub_server import GitRepo, HubServer, RecordedHub

ROOT = Path(__file__).resolve().parents[3]
PLUGIN_SOURCE = '''"""A lab's own network, installed as the package lab-nets."""
import math
from torch import nn


class TinyMLP(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], width: int = 16):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(in_shape), width), nn.Tanh(),
            nn.Linear(width, math.prod(out_shape)),
        )

    def forward(self, x):
        return self.net(x).reshape(x.shape[0], *self.out_shape)
'''


def install_plugin(root: Path) -> Path:
    """An installed distribution `lab-nets` on a path entry: its module and dist-info with the
    entry point registering `lab.tiny_mlp`, as pip would lay them out."""
    (root / "lab_nets").mkdir(parents=True)
    (root / "lab_nets" / "__init__.py").write_text(PLUGIN_SOURCE)
    info = root / "lab_nets-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-nets\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[mmvae_service.networks]\nlab.tiny_mlp = lab_nets:TinyMLP\n"
    )
    (info / "top_level.txt").write_text("lab_nets\n")
    (info / "RECORD").write_text("")
    return root


def plugin_config() -> dict:
    return {
        "model_type": "mvae",
        "modalities": [
            {"name": "image", "shape": [1, 8, 8], "likelihood": {"kind": "bernoulli"}},
            {"name": "label", "shape": [10], "likelihood": {"kind": "categorical"}},
        ],
        "latent_dim": 4,
        "encoder": {"kind": "lab.tiny_mlp", "width": 12},
        "decoder": {"kind": "lab.tiny_mlp"},
    }


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = install_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [n for n in NETWORKS if n.startswith("lab.")]:
        del NETWORKS[name]  # this process forgets the package again
    sys.modules.pop("lab_nets", None)


def python(code: str, path: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter of this project, with `path` (a plugin) importable or not."""
    env_path = [str(ROOT)] + ([str(path)] if path else [])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin"},
    )


# ---- the decorator --------------------------------------------------------------------------
class Doubler(nn.Module):
    """Maps [N, *in] to [N, *out] with one linear layer of `scale`-initialised weights."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], scale: float = 1.0):
        super().__init__()
        self.out_shape = out_shape
        self.layer = nn.Linear(math.prod(in_shape), math.prod(out_shape))
        nn.init.constant_(self.layer.weight, scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x.flatten(1)).reshape(x.shape[0], *self.out_shape)


@pytest.fixture
def doubler() -> type[nn.Module]:
    register_network("test.doubler")(Doubler)
    yield Doubler
    del NETWORKS["test.doubler"]


def test_a_registered_class_is_a_kind_with_typed_json_arguments(doubler: type) -> None:
    spec = validate_network_spec({"kind": "test.doubler", "scale": 2})
    assert spec == {"kind": "test.doubler", "package": "tests", "scale": 2.0}
    net = build_network(spec, (3,), (2, 2))
    assert isinstance(net, Doubler) and net(torch.ones(5, 3)).shape == (5, 2, 2)
    assert torch.equal(net.layer.weight, torch.full((4, 3), 2.0))
    with pytest.raises(ValidationError, match="scale"):
        validate_network_spec({"kind": "test.doubler", "scale": "big"})
    with pytest.raises(ValidationError, match="depth"):
        validate_network_spec({"kind": "test.doubler", "depth": 3})


def test_registration_refuses_bad_names_signatures_and_taken_names(doubler: type) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        register_network("Lab/UNet")(Doubler)
    with pytest.raises(ValueError, match="already taken"):
        register_network("mlp")(Doubler)

    class NoShapes(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="in_shape, out_shape"):
        register_network("test.no_shapes")(NoShapes)

    class Loose(nn.Module):
        def __init__(self, in_shape: tuple, out_shape: tuple, **options: int) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="no \\*args/\\*\\*kwargs"):
        register_network("test.loose")(Loose)
    assert register_network("test.doubler")(Doubler) is Doubler  # the same class again: fine


def test_arguments_must_be_json(doubler: type) -> None:
    class Anything(nn.Module):
        def __init__(self, in_shape: tuple, out_shape: tuple, extra: object = None) -> None:
            super().__init__()

    register_network("test.anything")(Anything)
    try:
        with pytest.raises(ValidationError, match="only JSON values"):
            validate_network_spec({"kind": "test.anything", "extra": {1, 2}})
    finally:
        del NETWORKS["test.anything"]


def test_an_unknown_kind_names_the_package_to_install() -> None:
    with pytest.raises(NetworkError, match=r"package 'lab-nets'.*pip install lab-nets"):
        validate_network_spec({"kind": "lab.unet", "package": "lab-nets"})
    with pytest.raises(NetworkError, match="register_network or an entry point"):
        validate_network_spec({"kind": "lab.unet"})


# ---- installed packages ---------------------------------------------------------------------
def test_an_installed_package_registers_through_its_entry_point(plugin_path: Path) -> None:
    model = build_model(plugin_config())
    assert type(model.encoders["image"]).__name__ == "TinyMLP"
    assert model.config.encoder == {"kind": "lab.tiny_mlp", "package": "lab-nets", "width": 12}
    assert model.encoders["image"].net[1].out_features == 12


def test_save_and_load_rebuild_from_the_package_and_refuse_without_it(
    plugin_path: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = build_model(plugin_config()).eval()
    folder = model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    reloaded = load_folder(folder)
    assert_same_outputs(reloaded, model)

    code = (
        f"from core.models.pretrained import load_folder; load_folder({str(folder)!r}); print('ok')"
    )
    assert python(code, plugin_path, tmp_path).stdout.strip() == "ok"
    refused = python(code, None, tmp_path)
    assert refused.returncode != 0
    assert "unknown network kind 'lab.tiny_mlp'" in refused.stderr
    assert "pip install lab-nets" in refused.stderr
    assert "Traceback" in refused.stderr and "pickle" not in refused.stderr


@pytest.mark.slow
def test_a_user_network_round_trips_through_the_hub_and_mmvae_serve(
    plugin_path: Path,
    recorded_hub: RecordedHub,
    hub_server: HubServer,
    new_repo: tuple[str, GitRepo],
    hf_cache: Path,
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    model = build_model(plugin_config()).eval()
    push_to_hub(model, "org/lab", endpoint="http://hub.test", token="hf_x")
    _, files = recorded_hub.commit()
    assert json.loads(files["config.json"])["config"]["encoder"]["package"] == "lab-nets"
    set_client_factory(default_client_factory)
    close_session()
    repo_id, repo = new_repo
    sha = repo.commit(files)
    pulled = load_from_hub(repo_id, sha, endpoint=hub_server.endpoint, cache_dir=hf_cache)
    assert_same_outputs(pulled, model)

    env = {
        "MMVAE_PRELOAD": f"lab=hub:{repo_id}@{sha}",
        "MMVAE_HUB_ENDPOINT": hub_server.endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(plugin_path),
    }
    with serve(tmp_path, **env) as server, server.client() as client:
        body = {"inputs": {"label": [3, 7]}, "targets": ["image"], "seed": 0}
        r = client.post("/v1/models/lab/generate", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"]["image"]["shape"] == [1, 2, 1, 8, 8]
    without = {**env, "PYTHONPATH": ""}
    with serve(tmp_path, ready="/healthz", **without) as server, server.client() as client:
        label, deadline = f"preload:lab=hub:{repo_id}@{sha}", time.monotonic() + 60
        while (failure := client.get("/readyz").json()["checks"].get(label)) in (None, "pending"):
            assert time.monotonic() < deadline, "the preload never finished"
            time.sleep(0.2)
        assert (
            "unknown network kind 'lab.tiny_mlp'" in failure and "pip install lab-nets" in failure
        )
        assert client.get("/v1/models/lab").status_code == 404
