"""Behaviour every model must have (DESIGN.md, "Models"), checked on every model variant."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from core.data.batch import Batch
from core.models import MultimodalVAE, available_models, build_model, parameter_count
from tests.core.models.cases import VARIANTS, make_batch, make_config


def _model(variant: str) -> MultimodalVAE:
    torch.manual_seed(0)
    return build_model(make_config(variant))


def _partial_masks(n: int, names: list[str]) -> dict[str, torch.Tensor]:
    """Every sample keeps at least one modality; some keep one, some keep all."""
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(len(names), n, generator=g) > 0.4
    masks[torch.arange(n) % len(names), torch.arange(n)] = True
    return {m: masks[i] for i, m in enumerate(names)}


def test_every_registered_model_is_covered():
    covered = {v["model_type"] for v in VARIANTS.values()}
    assert set(available_models()) <= covered


def test_forward_gives_finite_scalar_loss_and_grads_reach_every_parameter(variant):
    """In every training stage the loss is a finite scalar and reaches every parameter the
    stage trains; over the stages, every parameter is trained."""
    model = _model(variant)
    model.train()
    batch = make_batch(make_config(variant))
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    reached: set[str] = set()
    for stage in model.stages:
        model.set_stage(stage.name)
        model.zero_grad()
        out = model(batch)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        assert all(torch.isfinite(v) for v in out.metrics.values())
        out.loss.backward()
        trained = (
            names.values()
            if stage.parameters is None
            else [names[id(p)] for p in stage.parameters(model) if id(p) in names]
        )
        params = dict(model.named_parameters())
        dead = [n for n in trained if params[n].grad is None or not params[n].grad.abs().sum() > 0]
        assert dead == [], stage.name
        reached |= set(trained)
    assert reached == set(names.values())


def test_values_under_false_masks_change_neither_loss_nor_gradients(variant):
    config = make_config(variant)
    batch = make_batch(config, n=8)
    masks = _partial_masks(8, list(batch.data))
    clean = Batch(
        {m: x * masks[m].view(-1, *[1] * (x.ndim - 1)) for m, x in batch.data.items()}, masks
    )
    noisy = Batch(
        {
            m: torch.where(masks[m].view(-1, *[1] * (x.ndim - 1)), x, 1e3 * torch.randn_like(x) + 7)
            for m, x in batch.data.items()
        },
        masks,
    )
    results = []
    for b in (clean, noisy):
        model = _model(variant)
        model.train()
        torch.manual_seed(123)
        out = model(b)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.loss.detach(), grads))
    assert torch.equal(results[0][0], results[1][0])
    assert results[0][1].keys() == results[1][1].keys()
    for name in results[0][1]:
        assert torch.equal(results[0][1][name], results[1][1][name]), name


def test_trains_with_missing_modalities(variant):
    config = make_config(variant)
    batch = make_batch(config, n=32)
    batch = Batch(batch.data, _partial_masks(32, list(batch.data)))
    model = _model(variant)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = model(batch).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_shapes_of_encode_decode_sample_and_likelihood(variant):
    config = make_config(variant)
    model = _model(variant).eval()
    batch = make_batch(config, n=5)
    latent = model.encode(batch, n_samples=3)
    assert latent.z.shape == (3, 5, model.latent_dim)
    assert list(latent.codes) == list(model.latent_spaces)
    for space, codes in latent.codes.items():
        assert codes.shape == (3, 5, model.latent_spaces[space].dim)
    dists = model.decode(latent)
    assert list(dists) == model.generated
    for m in model.generated:
        assert dists[m].batch_shape == (3, 5)
        assert dists[m].event_shape == model.shapes[m]
    reason = model.sampling_error(None)
    if not model.sampled_spaces:  # a conditional model: no unconditional samples, said clearly
        assert "no unconditional prior" in reason
    elif not model.has_prior:  # an autoencoder: samples from a fitted sampler only
        assert "fit a latent sampler" in reason
    if reason is not None:
        with pytest.raises(ValueError, match="sampler: "):
            model.sample(7)
    else:
        samples = model.sample(7, generator=torch.Generator().manual_seed(0))
        assert {m: tuple(x.shape) for m, x in samples.items()} == {
            m: (7, *s) for m, s in model.shapes.items()
        }
    if model.deterministic:  # no likelihood, said clearly
        with pytest.raises(ValueError, match=f"log-likelihood: this {model.model_type} model is"):
            model.log_likelihood(batch, k=16)
        return
    ll = model.log_likelihood(batch, k=16)
    assert ll.shape == (5,) and torch.isfinite(ll).all() and (ll < 0).all()


def test_generation_shapes_for_every_given_target_pair(variant):
    config = make_config(variant)
    model = _model(variant).eval()
    batch = make_batch(config, n=4)
    names = model.names
    for k in range(1, len(names) + 1):
        for given in itertools.combinations(names, k):
            for target in names:
                reason = model.generation_error(given, [target])
                if reason is not None:  # what the model says it cannot do, it refuses
                    with pytest.raises(ValueError, match=r"given|targets"):
                        model.generate(batch, given=list(given), targets=[target])
                    continue
                out = model.generate(batch, given=list(given), targets=[target], n_samples=2)
                assert out[target].shape == (2, 4, *model.shapes[target]), (given, target)
                assert torch.isfinite(out[target]).all()


def test_per_sample_availability_matches_encoding_each_sample_alone(variant):
    """A batch mixing availabilities encodes each sample as if it were alone."""
    config = make_config(variant)
    model = _model(variant).eval()
    batch = make_batch(config, n=6)
    masks = _partial_masks(6, list(batch.data))
    for m in model.required_inputs:  # a conditional model encodes only given its conditions
        masks[m] = torch.ones(6, dtype=torch.bool)
    mixed = Batch(batch.data, masks)
    together = model.encode(mixed, mean=True).z[0]
    for i in range(6):
        alone = model.encode(mixed.index(slice(i, i + 1)), mean=True).z[0, 0]
        torch.testing.assert_close(together[i], alone, rtol=1e-5, atol=1e-6)


def test_save_and_load_round_trip_is_exact(variant, tmp_path: Path):
    config = make_config(variant)
    model = _model(variant)
    with torch.no_grad():  # make weights differ from a fresh init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    loaded = MultimodalVAE.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model)
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)
    batch = make_batch(config, n=3)
    a = model.generate(batch, n_samples=2, generator=torch.Generator().manual_seed(5))
    b = loaded.generate(batch, n_samples=2, generator=torch.Generator().manual_seed(5))
    for m in a:
        assert torch.equal(a[m], b[m])


def test_misspelled_config_field_is_an_error_naming_it(variant):
    config = make_config(variant)
    with pytest.raises(ValidationError, match="latnet_dim"):
        build_model({**config, "latnet_dim": 3})


def test_given_unknown_modality_is_an_error():
    model = _model("mvae")
    batch = make_batch(make_config("mvae"))
    with pytest.raises(ValueError, match=r"unknown modalities.*sound"):
        model.encode(batch, given=["sound"])


def test_training_on_digits_with_30_percent_missing_lowers_the_test_loss(variant):
    """A few epochs on the digits train split, 30 % of modalities missing at random, lower the
    loss on the (complete) test split."""
    from core.data import builtin_modalities, load_builtin, mcar
    from core.training import Trainer, TrainerConfig

    torch.manual_seed(0)
    model = build_model({**make_config(variant), "modalities": builtin_modalities("digits")})
    train = mcar(load_builtin("digits", "train"), ratio=0.3, seed=0)
    assert 0.2 < sum(train.missing_rate().values()) / 2 < 0.3
    trainer = Trainer(
        model,
        train,
        load_builtin("digits", "test"),
        TrainerConfig(epochs=3, batch_size=64, learning_rate=2e-3, seed=0),
    )
    before = trainer.evaluate()["loss"]
    result = trainer.fit()
    after = trainer.evaluate()["loss"]
    assert result.epochs_run == 3
    assert after < before - 1.0, (before, after)


def test_parameter_count_builds_nothing_and_matches_the_built_model(variant):
    """Job admission counts a config's parameters without building it for real (on the meta
    device, or in a memory-capped child for a model with ops the meta device lacks): the count
    is the real model's, and a huge config is over the limit without the memory ever used."""
    config = make_config(variant)
    assert parameter_count(config) == sum(p.numel() for p in _model(variant).parameters())
    huge = {**config, "encoder": {"kind": "mlp", "hidden": [1_000_000, 1_000_000]}}
    assert parameter_count(huge, at_most=10**8) > 10**8


def test_forward_returns_embeddings_and_reconstructions_when_asked(variant):
    """`return_outputs`: each latent space's posterior-mean code and each generated modality's
    reconstruction, per sample and detached; the loss is the same as without them."""
    model = _model(variant).eval()
    batch = make_batch(make_config(variant))
    torch.manual_seed(5)
    plain = model(batch)
    torch.manual_seed(5)
    watched = model(batch, return_outputs=True)
    assert torch.equal(plain.loss, watched.loss)
    embeddings = {k for k in watched.outputs if k.startswith("embedding/")}
    assert embeddings == {f"embedding/{s}" for s in model.latent_spaces}
    for space, spec in model.latent_spaces.items():
        assert watched.outputs[f"embedding/{space}"].shape == (batch.size, spec.dim)
    for m in model.generated:
        x = watched.outputs[f"reconstruction/{m}"]
        assert x.shape == (batch.size, *model.shapes[m]) and not x.requires_grad
