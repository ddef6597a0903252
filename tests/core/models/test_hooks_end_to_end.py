"""Each hook of the model API, end to end, on a test-only model that needs it (hook_models.py):
training, exact resume, stages, save/load with a sampler, push/pull over a loopback Hub,
augmentation, and the HTTP routes encode / generate / sample. None of this code knows the
models: it works by the latent spaces, posteriors and optimizers they declare."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from huggingface_hub import close_session, set_client_factory
from huggingface_hub.utils._http import default_client_factory

from core.augment import augment
from core.data import builtin_modalities, load_builtin, mcar
from core.data.dataset import MultimodalDataset
from core.models import MultimodalVAE, build_model
from core.models.pretrained import load_from_hub, push
from core.samplers import build_sampler
from core.store import ModelStore
from core.training import Callback, Trainer, TrainerConfig, TrainerState
from service.app import create_app
from tests.core.models.hook_models import BOTTOM, HOOK_MODELS, TOP
from tests.core.training.conftest import assert_same_weights, weights
from tests.service.conftest import make_settings, wait_ready

NET = {"kind": "mlp", "hidden": [32]}
TRAIN = {"batch_size": 64, "learning_rate": 2e-3, "seed": 5}


def make(name: str, seed: int = 0) -> MultimodalVAE:
    torch.manual_seed(seed)
    config = {
        **HOOK_MODELS[name],
        "modalities": builtin_modalities("digits"),
        "latent_dim": 4,
        "encoder": NET,
        "decoder": NET,
    }
    return build_model(config)


@pytest.fixture(scope="module")
def train_data() -> MultimodalDataset:
    return mcar(load_builtin("digits", "train").subset(range(320)), ratio=0.3, seed=0)


@pytest.fixture(scope="module")
def test_data() -> MultimodalDataset:
    return load_builtin("digits", "test").subset(range(96))


@pytest.fixture(scope="module")
def trained(train_data, test_data) -> dict[str, MultimodalVAE]:
    """Every hook model after 3 epochs, with a GMM sampler fitted on its sampled spaces."""
    out = {}
    for name in HOOK_MODELS:
        model = make(name)
        Trainer(model, train_data, test_data, TrainerConfig(epochs=3, **TRAIN)).fit()
        model.sampler = build_sampler("gmm", n_components=2).fit(
            model, train_data, generator=torch.Generator().manual_seed(0)
        )
        out[name] = model.eval()
    return out


class Record(Callback):
    """Per epoch: the stage the Trainer announced, the one the model saw, and the metrics."""

    def __init__(self, model: MultimodalVAE) -> None:
        self.model, self.epochs = model, {}

    def on_epoch_end(self, state: TrainerState) -> None:
        self.epochs[state.epoch] = {
            "stage": state.stage_name,
            "model_stage": self.model.stage,
            "lrs": dict(state.lrs),
            **state.train_metrics,
        }


# ---- training, resume, stages ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(HOOK_MODELS))
def test_training_lowers_the_loss_and_2_plus_2_epochs_equal_4(name, train_data, tmp_path):
    cfg = {**TRAIN, "scheduler": {"kind": "exponential", "gamma": 0.9}, "grad_clip_norm": 50.0}
    straight = make(name)
    record = Record(straight)
    out = str(tmp_path / "a")
    expected = Trainer(
        straight, train_data, None, {**cfg, "epochs": 4, "output_dir": out}, [record]
    ).fit()
    first = make(name)
    Trainer(first, train_data, None, {**cfg, "epochs": 2, "output_dir": str(tmp_path / "b")}).fit()
    resumed = make(name, seed=99)  # other initial weights: they must come from the checkpoint
    again = Trainer(
        resumed, train_data, None, {**cfg, "epochs": 4, "output_dir": str(tmp_path / "b")}
    )
    result = again.fit(resume=True)
    assert_same_weights(weights(straight), weights(resumed))
    assert result.train_metrics == expected.train_metrics
    losses = [record.epochs[e]["loss"] for e in (1, 2, 3, 4)]
    assert losses[-1] < losses[0], losses


def test_two_optimizers_are_built_clipped_scheduled_and_checkpointed_by_name(train_data, tmp_path):
    model = make("adversarial")
    record = Record(model)
    cfg = {**TRAIN, "epochs": 2, "grad_clip_norm": 1.0, "output_dir": str(tmp_path)}
    cfg["scheduler"] = {"kind": "exponential", "gamma": 0.5}
    result = Trainer(model, train_data, None, cfg, [record]).fit()
    assert {"grad_norm/autoencoder", "grad_norm/discriminator", "critic"} <= set(
        result.train_metrics
    )
    assert "grad_norm" not in result.train_metrics  # no optimizer is called "main"
    # each optimizer's own learning rate (the discriminator overrides the config's), decayed
    assert record.epochs[1]["lrs"] == {"autoencoder": 2e-3, "discriminator": 5e-4}
    assert record.epochs[2]["lrs"] == pytest.approx({"autoencoder": 1e-3, "discriminator": 2.5e-4})
    (checkpoint,) = (tmp_path / "checkpoints").iterdir()
    state = json.loads((checkpoint / "state.json").read_text())["state"]
    assert (
        sorted(state["optimizers"])
        == sorted(state["schedulers"])
        == ["autoencoder", "discriminator"]
    )
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(line["lrs"]) == {"autoencoder", "discriminator"}


@pytest.mark.parametrize("stop", [("epochs", 1), ("epochs", 2), ("steps", 13)])
def test_stage_boundaries_are_exact_across_a_resume(stop, train_data, tmp_path):
    """warmup = 2: epochs 1-2 autoencode (β = 0, every parameter), 3-4 regularise (decoders
    frozen); resumed after epoch 1, at the boundary, or mid-epoch 3, the stages are the same."""
    straight = make("two_stage")
    record = Record(straight)
    Trainer(straight, train_data, None, {**TRAIN, "epochs": 4}, [record]).fit()
    stages = [record.epochs[e]["model_stage"] for e in (1, 2, 3, 4)]
    assert stages == ["autoencode"] * 2 + ["regularise"] * 2
    assert [record.epochs[e]["stage"] for e in (1, 2, 3, 4)] == stages
    assert [record.epochs[e]["stage_index"] for e in (1, 2, 3, 4)] == [0.0, 0.0, 1.0, 1.0]

    kind, at = stop
    out = str(tmp_path / "run")
    if kind == "epochs":
        Trainer(
            make("two_stage"), train_data, None, {**TRAIN, "epochs": at, "output_dir": out}
        ).fit()
    else:  # 5 steps an epoch: step 13 is in the middle of epoch 3

        class Stop(Callback):
            def on_step_end(self, state: TrainerState) -> bool:
                return state.global_step >= at

        cfg = {**TRAIN, "epochs": 4, "output_dir": out, "checkpoint_every_steps": 1}
        Trainer(make("two_stage"), train_data, None, cfg, [Stop()]).fit()
    resumed = make("two_stage", seed=7)
    tail = Record(resumed)
    cfg = {**TRAIN, "epochs": 4, "output_dir": out}
    Trainer(resumed, train_data, None, cfg, [tail]).fit(resume=True)
    assert sorted(tail.epochs) == list(range(at + 1 if kind == "epochs" else 3, 5))
    for e, seen in tail.epochs.items():
        assert seen["model_stage"] == stages[e - 1] == seen["stage"], e
    assert_same_weights(weights(straight), weights(resumed))


def test_a_stage_trains_only_its_parameters(train_data):
    model = make("two_stage")
    seen: dict[int, dict] = {}

    class Snapshot(Callback):
        def on_epoch_end(self, state: TrainerState) -> None:
            seen[state.epoch] = weights(model)

    Trainer(model, train_data, None, {**TRAIN, "epochs": 4}, [Snapshot()]).fit()
    decoders = [k for k in seen[2] if k.startswith("decoders.")]
    encoders = [k for k in seen[2] if k.startswith("encoders.")]
    assert all(torch.equal(seen[2][k], seen[4][k]) for k in decoders)
    assert all(not torch.equal(seen[2][k], seen[4][k]) for k in encoders)


# ---- persistence and the Hub ----------------------------------------------------------------
def outputs(model: MultimodalVAE, data: MultimodalDataset) -> dict[str, torch.Tensor]:
    batch = data.batch(slice(0, 8))
    gen = model.generate(batch, ["image"], n_samples=2, generator=torch.Generator().manual_seed(1))
    smp = model.sample(5, model.sampler, generator=torch.Generator().manual_seed(2))
    ll = model.log_likelihood(batch, k=8, generator=torch.Generator().manual_seed(3))
    return {
        **{f"gen_{k}": v for k, v in gen.items()},
        **{f"smp_{k}": v for k, v in smp.items()},
        "ll": ll,
    }


def assert_same_model(a: MultimodalVAE, b: MultimodalVAE, data: MultimodalDataset) -> None:
    assert type(a) is type(b) and a.describe_latent_spaces() == b.describe_latent_spaces()
    assert_same_weights(weights(a), weights(b))
    assert b.sampler is not None and b.sampler.config() == a.sampler.config()
    out_a, out_b = outputs(a, data), outputs(b, data)
    for k in out_a:
        assert torch.equal(out_a[k], out_b[k]), k


@pytest.mark.parametrize("name", sorted(HOOK_MODELS))
def test_save_load_and_push_pull_keep_the_model_and_its_sampler(
    name, trained, test_data, tmp_path, recorded_hub, hub_server, new_repo, hf_cache
):
    model = trained[name]
    assert set(model.sampler.spaces) == set(model.sampled_spaces)
    folder = model.save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert config["latent_spaces"] == model.describe_latent_spaces()
    assert_same_model(model, MultimodalVAE.from_pretrained(folder), test_data)

    push(model, "org/shared", endpoint="http://hub.test", token="hf_x")
    _, files = recorded_hub.commit()
    assert {"config.json", "model.safetensors", "sampler/config.json"} <= set(files)
    set_client_factory(default_client_factory)
    close_session()
    repo_id, repo = new_repo
    sha = repo.commit(files)
    pulled = load_from_hub(repo_id, sha, endpoint=hub_server.endpoint, cache_dir=hf_cache)
    assert pulled.source["sha"] == sha
    assert_same_model(model, pulled, test_data)


# ---- augmentation ---------------------------------------------------------------------------
def test_two_level_sampler_covers_only_the_top_level(trained):
    model = trained["two_level"]
    assert model.sampled_spaces == {TOP: 2} and set(model.sampler.spaces) == {TOP}
    latent = model.draw_prior(6, model.sampler, torch.Generator().manual_seed(0))
    assert latent.codes[TOP].shape == (1, 6, 2) and latent.codes[BOTTOM].shape == (1, 6, 4)


@pytest.mark.parametrize("name", sorted(HOOK_MODELS))
def test_augmentation_synthetic_and_completion(name, trained, test_data):
    model = trained[name]
    whole = augment(model, 40, seed=3, chunk_size=40)
    assert len(whole) == 40 and torch.isfinite(whole.data["image"]).all()
    pieces = augment(model, 40, seed=3, chunk_size=7)
    for m in whole.data:
        torch.testing.assert_close(pieces.data[m], whole.data[m], atol=1e-5, rtol=0)
    given = mcar(test_data.subset(range(30)), ratio=0.5, seed=1)
    done = augment(model, given=given, seed=4, chunk_size=30)
    assert all(bool(k.all()) for k in done.masks.values())
    for m in given.data:
        kept = given.masks[m]
        assert torch.equal(done.data[m][kept], given.data[m][kept])
    again = augment(model, given=given, seed=4, chunk_size=11)
    for m in done.data:
        torch.testing.assert_close(again.data[m], done.data[m], atol=1e-5, rtol=0)


# ---- HTTP ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(trained, tmp_path_factory):
    store = ModelStore(tmp_path_factory.mktemp("store"))
    for name, model in trained.items():
        store.save(model, name.replace("_", "-"), "1")
    settings = make_settings(
        store.root,
        tmp_path_factory.mktemp("data"),
        preload=[f"store:{n.replace('_', '-')}" for n in trained],
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c


@pytest.mark.parametrize("name", sorted(HOOK_MODELS))
def test_http_encode_generate_and_sample(name, trained, client):
    model, served = trained[name], name.replace("_", "-")
    info = client.get(f"/v1/models/{served}").json()
    assert info["latent_spaces"] == model.describe_latent_spaces()
    assert info["primary_space"] == model.primary_space and info["samplers"] == ["prior", "gmm"]

    inputs = {"label": [3, None, 5], "image": [None, [[[0.5] * 8] * 8], None]}
    r = client.post(f"/v1/models/{served}/encode", json={"inputs": inputs, "n_samples": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["space"] == model.primary_space and set(body["spaces"]) == set(model.latent_spaces)
    for space, out in body["spaces"].items():
        dim = model.latent_spaces[space].dim
        assert out["samples"]["shape"] == [4, 3, dim]
        assert out["mean"]["shape"] in ([3, dim], [4, 3, dim])  # per draw for a conditional one
        assert out["scale"]["shape"] == out["mean"]["shape"]
        assert all(s >= 0 for s in out["scale"]["data"])
    assert body["mean"] == body["spaces"][model.primary_space]["mean"]

    r = client.post(
        f"/v1/models/{served}/generate",
        json={"inputs": inputs, "targets": ["image"], "n_samples": 2},
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"]["image"]["shape"] == [2, 3, 1, 8, 8]

    for sampler in ("prior", "gmm"):
        req = {"n": 5, "sampler": sampler, "seed": 1}
        r = client.post(f"/v1/models/{served}/sample", json=req)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"]["label"]["shape"] == [5, 10]
        assert client.post(f"/v1/models/{served}/sample", json=req).json() == r.json()


def test_mixed_precision_runs_every_optimizer_and_unknown_names_are_refused(train_data):
    """bf16 autocast (the CPU's mixed precision) covers both phases; backward runs outside it."""
    model = make("adversarial")
    critic_before = {k: v.clone() for k, v in weights(model).items() if k.startswith("critic.")}
    cfg = {**TRAIN, "epochs": 1, "device": "cpu", "mixed_precision": "bf16"}
    result = Trainer(model, train_data, None, cfg).fit()
    assert all(torch.isfinite(torch.tensor(v)) for v in result.train_metrics.values())
    assert all(not torch.equal(v, weights(model)[k]) for k, v in critic_before.items())

    from core.training.optimizers import StageOptimizers

    handle = StageOptimizers(model, model.stages[0], TrainerConfig(), stage_epochs=1)
    with pytest.raises(
        KeyError, match=r"unknown 'main'; this stage has \['autoencoder', 'discriminator'\]"
    ):
        handle.step(model(train_data.batch(slice(0, 4))).loss)
