"""augment(): synthetic and completed datasets, chunk-size invariance, provenance, the CLI, and
a classifier trained on real + synthetic digits."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from core.augment import augment
from core.data.dataset import MultimodalDataset
from core.data.missingness import mcar
from core.data.npz import load_npz
from core.models import MultimodalVAE
from core.samplers import build_sampler, save_sampler
from tests.core.samplers.helpers import digits, train


@pytest.fixture(scope="module")
def model() -> MultimodalVAE:
    return train(steps=100)


@pytest.fixture(scope="module")
def gmm(model):
    return build_sampler("gmm", n_components=10).fit(
        model, digits("train"), generator=torch.Generator().manual_seed(0)
    )


def assert_same(a: MultimodalDataset, b: MultimodalDataset) -> None:
    for m in a.data:
        torch.testing.assert_close(a.data[m], b.data[m], atol=1e-6, rtol=0)
    assert torch.equal(a.labels, b.labels)


def test_synthetic_shapes_masks_labels_and_provenance(model, gmm) -> None:
    ds = augment(model, 300, sampler=gmm, seed=3, chunk_size=128)
    assert len(ds) == 300 and ds.shapes == {"image": (1, 8, 8), "label": (10,)}
    assert all(bool(k.all()) for k in ds.masks.values())
    assert ((ds.data["image"] >= 0) & (ds.data["image"] <= 1)).all()
    assert torch.equal(ds.data["label"].sum(-1), torch.ones(300))  # valid one-hots
    assert torch.equal(ds.labels, ds.data["label"].argmax(-1))
    assert len(ds.labels.unique()) > 3
    prov = ds.metadata["provenance"]
    assert prov["model_type"] == "mvae" and prov["seed"] == 3 and prov["n"] == 300
    assert prov["mode"] == "synthetic" and prov["sampler"]["name"] == "gmm"
    assert prov["sampler"]["options"]["n_components"] == 10
    assert {"created", "library_version", "model_source", "categorical"} <= set(prov)
    json.dumps(ds.metadata)


def test_chunking_does_not_change_the_result(model, gmm) -> None:
    one = augment(model, 600, sampler=gmm, seed=1, chunk_size=600)
    assert_same(augment(model, 600, sampler=gmm, seed=1, chunk_size=7), one)
    assert_same(augment(model, 600, sampler=gmm, seed=1, chunk_size=256), one)
    other = augment(model, 600, sampler=gmm, seed=2, chunk_size=600)
    assert not torch.equal(other.data["image"], one.data["image"])


def test_default_sampler_is_the_prior_and_argmax_labels(model) -> None:
    ds = augment(model, 50, categorical="argmax")
    assert ds.metadata["provenance"]["sampler"]["name"] == "prior"
    probs = model.decode(torch.zeros(1, 1, 4))["label"].mean  # sanity: decode works
    assert probs.shape == (1, 1, 10)
    assert torch.equal(ds.data["label"].sum(-1), torch.ones(50))


def test_completion_keeps_observed_values_and_fills_missing(model, gmm) -> None:
    given = mcar(digits("test"), ratio=0.5, seed=0)
    out = augment(model, sampler=gmm, given=given, seed=0, chunk_size=100)
    assert len(out) == len(given) and all(bool(k.all()) for k in out.masks.values())
    for m in given.modalities:
        seen = given.masks[m]
        assert torch.equal(out.data[m][seen], given.data[m][seen])  # observed: exact
        assert (~seen).sum() > 0 and (out.data[m][~seen].flatten(1).abs().sum(1) > 0).all()
    assert torch.equal(out.labels, given.labels)
    assert out.metadata["provenance"]["mode"] == "completion"
    assert out.metadata["source_metadata"]["missingness"]["kind"] == "mcar"
    again = augment(model, sampler=gmm, given=given, seed=0, chunk_size=len(given))
    assert_same(again, out)


def test_output_is_written_as_npz(model, gmm, tmp_path) -> None:
    path = tmp_path / "synth.npz"
    ds = augment(model, 40, sampler=gmm, output=path)
    back = load_npz(path)
    assert_same(back, ds)
    assert back.metadata["provenance"] == ds.metadata["provenance"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n": 0}, "n:"), ({"n": 5, "chunk_size": 0}, "chunk_size"), ({"n": 5, "seed": -1}, "seed")],
)
def test_bad_arguments(model, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        augment(model, **kwargs)


def cli(argv: list[str]) -> int:
    from core.cli import augment as command

    parser = argparse.ArgumentParser(prog="mmvae")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["augment", *argv])
    return args.func(args)


def test_cli_with_a_saved_sampler_and_fitting_one(model, gmm, tmp_path, capsys) -> None:
    model_dir = model.save_pretrained(tmp_path / "model")
    save_sampler(gmm, model_dir)
    out = tmp_path / "synth.npz"
    assert cli([str(model_dir), "--n", "30", "--output", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sampler"] == "gmm" and summary["sampler_origin"] == "saved"
    ds = load_npz(out)
    assert len(ds) == 30 and ds.metadata["provenance"]["model_source"] == str(model_dir)
    argv = [str(model_dir), "--n", "20", "--output", str(out), "--sampler", "prior"]
    assert cli([*argv, "--chunk-size", "8", "--seed", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["sampler_origin"] == "fitted"
    assert load_npz(out).metadata["provenance"]["seed"] == 4
    given = tmp_path / "given.npz"
    from core.data.npz import save_npz

    save_npz(mcar(digits("test").subset(slice(0, 50)), 0.5), given)
    assert cli([str(model_dir), "--complete", str(given), "--output", str(out)]) == 0
    assert load_npz(out).metadata["provenance"]["mode"] == "completion"
    with pytest.raises(ValueError, match="--n"):
        cli([str(model_dir), "--output", str(out)])


def train_for_quality(epochs: int = 30) -> MultimodalVAE:
    """An MVAE trained by the Trainer on the digits train split (settings of the quality test)."""
    from core.data.builtin import builtin_modalities
    from core.models import MVAE
    from core.training import Trainer, TrainerConfig

    torch.manual_seed(0)
    net = {"kind": "mlp", "hidden": [256, 256]}
    config = {"modalities": builtin_modalities("digits"), "latent_dim": 16}
    model = MVAE({**config, "encoder": net, "decoder": net})
    trainer = TrainerConfig(epochs=epochs, batch_size=64, learning_rate=1e-3, seed=0)
    Trainer(model, digits("train"), config=trainer).fit()
    return model.eval()


@pytest.mark.slow
def test_classifier_on_real_plus_synthetic_digits() -> None:
    """Logistic regression on 300 real digits vs the same + 1000 synthetic ones: the augmented
    one may be worse by at most MARGIN (5 accuracy points) on the test split."""
    from sklearn.linear_model import LogisticRegression

    margin = 0.05
    model = train_for_quality()
    train_set, test_set = digits("train"), digits("test")
    sampler = build_sampler("gmm", n_components=20).fit(
        model, train_set, generator=torch.Generator().manual_seed(0)
    )
    pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))[:300]
    real = train_set.subset(pick)
    synth = augment(model, 1000, sampler=sampler, seed=0)
    x_test, y_test = test_set.data["image"].flatten(1).numpy(), test_set.labels.numpy()

    def score(x: np.ndarray, y: np.ndarray) -> float:
        clf = LogisticRegression(max_iter=2000).fit(x, y)
        return float(clf.score(x_test, y_test))

    x_real, y_real = real.data["image"].flatten(1).numpy(), real.labels.numpy()
    x_syn, y_syn = synth.data["image"].flatten(1).numpy(), synth.labels.numpy()
    real_acc = score(x_real, y_real)
    aug_acc = score(np.concatenate([x_real, x_syn]), np.concatenate([y_real, y_syn]))
    syn_acc = score(x_syn, y_syn)
    print(
        f"\ntest accuracy: real 300 {real_acc:.3f} | real 300 + synthetic 1000 {aug_acc:.3f} "
        f"| synthetic 1000 alone {syn_acc:.3f} (margin {margin})"
    )
    assert aug_acc >= real_acc - margin
