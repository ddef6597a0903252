"""Papers' experiments with their published settings, each a model config and a trainer config
for a benchmark dataset given as .npz files in the project's format (`core/data/npz.py`).

The settings follow each paper, or MultiVae's reproduction script where the paper leaves them
open (said per experiment). Networks are this project's `conv`/`mlp` specs, not the papers' exact
architectures (ResNets for Translated PolyMNIST, for instance): that difference is stated in each
`notes`. The anchors are the published figures to compare with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from sklearn.metrics import normalized_mutual_info_score

from core.data import MultimodalDataset
from core.metrics.clustering import hungarian_accuracy
from core.metrics.common import batches
from core.models import MultimodalVAE

Shapes = dict[str, list[int]]


@dataclass(frozen=True)
class PaperExperiment:
    """One paper's experiment: what data it needs, how the model and the training are set."""

    name: str
    paper: str
    dataset: str
    anchor: str
    check_shapes: Callable[[Shapes], None]
    model: Callable[[Shapes], dict[str, Any]]
    trainer: dict[str, Any]
    epochs: int
    notes: str = ""
    metrics: tuple[str, ...] = ("likelihood", "reconstruction")
    after_training: Callable[[MultimodalVAE, MultimodalDataset, MultimodalDataset], dict] | None = (
        field(default=None)
    )


def polymnist_shapes(shapes: Shapes) -> None:
    """PolyMNIST and Translated PolyMNIST: five 3×28×28 modalities."""
    if len(shapes) != 5 or any(s != [3, 28, 28] for s in shapes.values()):
        raise ValueError(f"dataset: PolyMNIST has five modalities of [3, 28, 28], found {shapes}")


def mnist_svhn_shapes(shapes: Shapes) -> None:
    """MNIST-SVHN: `mnist` 1×28×28 and `svhn` 3×32×32."""
    if shapes != {"mnist": [1, 28, 28], "svhn": [3, 32, 32]}:
        raise ValueError(
            f"dataset: MNIST-SVHN has mnist [1, 28, 28] and svhn [3, 32, 32], found {shapes}"
        )


def laplace_images(shapes: Shapes, scale: float = 0.75) -> list[dict[str, Any]]:
    likelihood = {"kind": "laplace", "scale": scale}
    return [
        {"name": m, "shape": s, "kind": "image", "likelihood": likelihood}
        for m, s in shapes.items()
    ]


def mmvae_plus_model(shapes: Shapes) -> dict[str, Any]:
    return {
        "model_type": "mmvae_plus",
        "modalities": laplace_images(shapes),
        "latent_dim": 32,
        "modalities_specific_dim": 32,
        "encoder": {"kind": "conv"},
        "decoder": {"kind": "conv"},
        "K": 1,
        "loss": "iwae_looser",
        "beta": 2.5,
        "prior_and_posterior_dist": "laplace_with_softmax",
    }


def cmvae_model(shapes: Shapes) -> dict[str, Any]:
    return {
        **mmvae_plus_model(shapes),
        "model_type": "cmvae",
        "learn_modality_prior": True,
        "number_of_clusters": 40,
    }


def crmvae_model(shapes: Shapes) -> dict[str, Any]:
    return {
        "model_type": "crmvae",
        "modalities": laplace_images(shapes),
        "latent_dim": 512,
        "encoder": {"kind": "conv"},
        "decoder": {"kind": "conv"},
        "beta": 0.1,
    }


def dmvae_model(shapes: Shapes) -> dict[str, Any]:
    normal = {"kind": "normal", "scale": 1.0}
    return {
        "model_type": "dmvae",
        "modalities": [
            {
                "name": "mnist",
                "shape": shapes["mnist"],
                "likelihood": normal,
                "encoder": {"kind": "mlp", "hidden": [256]},
                "decoder": {"kind": "mlp", "hidden": [256]},
                "weight": 50.0,
            },
            {"name": "svhn", "shape": shapes["svhn"], "likelihood": normal},
        ],
        "latent_dim": 10,
        "modalities_specific_dim": {"mnist": 1, "svhn": 4},
        "encoder": {"kind": "conv"},
        "decoder": {"kind": "conv"},
    }


def cluster_selection(
    model: MultimodalVAE, train: MultimodalDataset, test: MultimodalDataset
) -> dict[str, Any]:
    """CMVAE's post-hoc choice of the number of clusters on the training set, then the test
    set's clustering by the model's own assignments against its labels."""
    pruned = model.prune_clusters(batches(train, 256))  # type: ignore[attr-defined]
    out: dict[str, Any] = {"clusters_kept": len(pruned["kept"]), "scores": pruned["scores"]}
    if test.labels is not None:
        predict = model.predict_clusters  # type: ignore[attr-defined]
        clusters = torch.cat([predict(b)[0] for b in batches(test, 256)]).numpy()
        out["accuracy"] = hungarian_accuracy(test.labels.numpy(), clusters)
        out["nmi"] = float(normalized_mutual_info_score(test.labels.numpy(), clusters))
    return out


AMSGRAD = {"optimizer": "adam", "optimizer_kwargs": {"amsgrad": True}, "learning_rate": 1e-3}

EXPERIMENTS: dict[str, PaperExperiment] = {
    e.name: e
    for e in [
        PaperExperiment(
            name="mmvae_plus_polymnist",
            paper="MMVAE+ (Palumbo, Daunhawer & Vogt, ICLR 2023)",
            dataset="PolyMNIST",
            anchor="coherence 86.9, FID 92.8 (MultiVae 88.6 ± 0.8 / 93 ± 5)",
            check_shapes=polymnist_shapes,
            model=mmvae_plus_model,
            trainer={**AMSGRAD, "batch_size": 32},
            epochs=150,
            notes="K = 1, iwae_looser, β = 2.5, latent 32 + 32, Laplace(0.75) decoders (paper)",
        ),
        PaperExperiment(
            name="cmvae_polymnist",
            paper="CMVAE (Palumbo, Manduchi, Laguna, Chopard & Vogt, ICLR 2024)",
            dataset="PolyMNIST (labels = the digit)",
            anchor="PolyMNIST 89.7 / 78.1 (MultiVae 88.6 / 76.4)",
            check_shapes=polymnist_shapes,
            model=cmvae_model,
            trainer={**AMSGRAD, "batch_size": 128},
            epochs=250,
            notes=(
                "MMVAE+'s settings with 40 clusters, batch 128, 250 epochs at K = 1 (MultiVae's "
                "reproduction script); clusters selected after training with the paper's rule"
            ),
            after_training=cluster_selection,
        ),
        PaperExperiment(
            name="crmvae_translated_polymnist",
            paper="CRMVAE (OpenReview)",
            dataset="Translated PolyMNIST",
            anchor="coherences 0.145 / 0.172 / 0.192 / 0.21 for 1..4 given modalities",
            check_shapes=polymnist_shapes,
            model=crmvae_model,
            trainer={"optimizer": "adam", "learning_rate": 5e-4, "batch_size": 256},
            epochs=500,
            notes=(
                "latent 512, β = 0.1, Laplace(0.75) decoders, Adam 5e-4, batch 256 (MultiVae's "
                "reproduction script; its ResNet encoders are conv specs here)"
            ),
        ),
        PaperExperiment(
            name="dmvae_mnist_svhn",
            paper="DMVAE (Lee & Pavlovic, CVPR-W 2021)",
            dataset="MNIST-SVHN (modalities `mnist`, `svhn`; pairs as Shi et al. 2019)",
            anchor="coherences 88.1 / 83.7 / 44.7 (MultiVae 89.2 / 81.3 / 46.0)",
            check_shapes=mnist_svhn_shapes,
            model=dmvae_model,
            trainer={**AMSGRAD, "batch_size": 100},
            epochs=10,
            notes=(
                "shared latent 10, private mnist 1 and svhn 4, mnist likelihood weighted 50, "
                "Adam amsgrad 1e-3, batch 100, 10 epochs (MultiVae's reproduction script)"
            ),
        ),
    ]
}
