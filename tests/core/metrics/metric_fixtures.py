"""Helpers and fixtures of the metric tests (a uniquely named module that tests import): a tiny
labelled image+label dataset, tiny trained models of the aggregated (MVAE) and joint (JMVAE)
families, stub generators with known answers, and a linear-Gaussian model whose marginal
likelihood is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from core.data.batch import Batch
from core.data.dataset import MultimodalDataset
from core.models import JMVAE, MVAE, ModelConfig, MultimodalVAE

N_CLASSES = 4
PROTOTYPES = torch.zeros(N_CLASSES, 1, 8, 8)
for _c in range(N_CLASSES):  # class c: a bright 4x4 quadrant
    PROTOTYPES[_c, 0, 4 * (_c // 2) : 4 * (_c // 2) + 4, 4 * (_c % 2) : 4 * (_c % 2) + 4] = 1.0

MODALITIES = [
    {"name": "image", "shape": [1, 8, 8], "likelihood": {"kind": "bernoulli"}},
    {"name": "label", "shape": [N_CLASSES], "likelihood": {"kind": "categorical"}},
]


def make_dataset(n: int = 160, seed: int = 0, missing: bool = False) -> MultimodalDataset:
    """Images = class prototype blurred with noise, clipped to [0, 1]; label one-hot."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % N_CLASSES
    img = (PROTOTYPES[y] * 0.8 + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1)
    masks = None
    if missing:  # every 5th sample lacks its image, every 7th its label (never both)
        idx = torch.arange(n)
        masks = {"image": idx % 5 != 0, "label": (idx % 7 != 0) | (idx % 5 == 0)}
    data = {"image": img, "label": F.one_hot(y, N_CLASSES).float()}
    return MultimodalDataset(data, masks, labels=y)


def classify_image(x: Tensor) -> Tensor:
    """Nearest prototype: the brightest quadrant."""
    q = F.avg_pool2d(x.reshape(-1, 1, 8, 8), 4).flatten(1)  # [B, 4] in order (0,0),(0,1),(1,0)..
    return q.argmax(-1)


def train(model: MultimodalVAE, dataset: MultimodalDataset, steps: int = 60) -> MultimodalVAE:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    model.set_epoch(100)
    batch = dataset.batch()
    for _ in range(steps):
        opt.zero_grad()
        model(batch).loss.backward()
        opt.step()
    return model.eval()


def tiny(model_type: str) -> MultimodalVAE:
    torch.manual_seed(0)
    cfg = {
        "modalities": MODALITIES,
        "latent_dim": 4,
        "encoder": {"kind": "mlp", "hidden": [32]},
        "decoder": {"kind": "mlp", "hidden": [32]},
    }
    if model_type == "jmvae":
        return JMVAE(
            {**cfg, "joint_features": 16, "joint_encoder": {"kind": "mlp", "hidden": [32]}}
        )
    return MVAE(cfg)


@pytest.fixture(scope="session")
def dataset() -> MultimodalDataset:
    return make_dataset()


@pytest.fixture(scope="session", params=["mvae", "jmvae"])
def trained(request, dataset) -> MultimodalVAE:
    """A tiny model of each family trained 60 full-batch Adam steps."""
    return train(tiny(request.param), dataset)


class StubGenerator(MultimodalVAE):
    """Generates the true class of each sample (or a shuffled one): known coherence.

    generate: label -> one-hot of the (possibly permuted) class; image -> its prototype.
    sample: n samples of classes 0..C-1 in turn, both modalities agreeing unless shuffled.
    """

    def __init__(self, shuffle: bool = False, seed: int = 0) -> None:
        cfg = ModelConfig(model_type="stub", modalities=MODALITIES, latent_dim=1)
        super().__init__(cfg)
        self.shuffle = shuffle
        self.g = torch.Generator().manual_seed(seed)

    def _classes(self, y: Tensor) -> Tensor:
        if not self.shuffle:
            return y
        return torch.randint(N_CLASSES, y.shape, generator=self.g)

    def _render(self, y: Tensor, modality: str) -> Tensor:
        return PROTOTYPES[y] if modality == "image" else F.one_hot(y, N_CLASSES).float()

    def generate(self, batch: Batch, given=None, targets=None, n_samples=1, generator=None, **kw):
        self.availability(batch, given)
        targets = list(targets or self.names)
        return {
            m: torch.stack([self._render(self._classes(batch.labels), m) for _ in range(n_samples)])
            for m in targets
        }

    def sample(self, n, sampler=None, modalities=None, generator=None):
        y = torch.arange(n) % N_CLASSES
        return {m: self._render(self._classes(y), m) for m in (modalities or self.names)}


@pytest.fixture
def stub_factory():
    return StubGenerator


class Replay(MultimodalVAE):
    """Samples the dataset's own values and 'generates' each sample's true target."""

    def __init__(self, data):
        super().__init__(ModelConfig(model_type="replay", modalities=MODALITIES, latent_dim=1))
        self.data = data

    def sample(self, n, sampler=None, modalities=None, generator=None):
        return {m: self.data[m][:n] for m in modalities or self.names}

    def generate(self, batch, given=None, targets=None, n_samples=1, generator=None, **kw):
        return {m: batch.data[m].unsqueeze(0) for m in targets or self.names}


# ---- linear-Gaussian model: p(x) = N(b, W Wᵀ + σ² I) exactly -------------------------------
SIGMA = 0.5
DIMS = {"a": 2, "b": 3}


def linear_gaussian(model_type: str, seed: int = 0, perturb: bool = False) -> MultimodalVAE:
    """1-D latent, linear decoders x_m = w_m z + b_m + σ ε, and encoders set to the exact
    posterior factors (optionally perturbed: means x0.9, variances x2, so IS has work to do)."""
    g = torch.Generator().manual_seed(seed)
    mods = [
        {"name": m, "shape": [d], "likelihood": {"kind": "normal", "scale": SIGMA}}
        for m, d in DIMS.items()
    ]
    linear = {"kind": "mlp", "hidden": []}
    cfg = {"modalities": mods, "latent_dim": 1, "encoder": linear, "decoder": linear}
    if model_type == "jmvae":
        relu = {"joint_feature_activation": "relu"}
        model = JMVAE({**cfg, "joint_features": 2, "joint_encoder": linear, **relu})
    else:
        model = MVAE(cfg)
    lam_total = 1.0
    with torch.no_grad():
        for m, d in DIMS.items():
            w, b = torch.randn(d, 1, generator=g), torch.randn(d, generator=g)
            dec, enc = model.decoders[m][1], model.encoders[m][1]
            dec.weight.copy_(w)
            dec.bias.copy_(b)
            norm2 = float((w**2).sum())
            lam = norm2 / SIGMA**2  # precision of this modality's likelihood factor
            lam_total += lam
            shrink = 0.9 if perturb else 1.0
            enc.weight.zero_()
            enc.weight[0] = shrink * w[:, 0] / norm2
            enc.bias[0] = -shrink * float(w[:, 0] @ b) / norm2
            enc.bias[1] = -math.log(lam) + (math.log(2.0) if perturb else 0.0)
        if model_type == "jmvae":  # joint encoder = exact posterior via relu(u) - relu(-u) = u
            head = model.joint_head[1]
            head.weight.zero_()
            head.bias.zero_()
            for i, m in enumerate(DIMS):
                w, b = model.decoders[m][1].weight[:, 0], model.decoders[m][1].bias
                c = w / SIGMA**2 / lam_total
                feat = model.joint_features[m][1]
                feat.weight.copy_(torch.stack([c, -c]))
                feat.bias.copy_(torch.stack([-(c @ b), c @ b]))
                head.weight[0, 2 * i], head.weight[0, 2 * i + 1] = 1.0, -1.0
            head.bias[1] = -math.log(lam_total)
    return model.eval()


def exact_log_marginal(model: MultimodalVAE, x: dict[str, Tensor], names: list[str]) -> Tensor:
    """log N(x_names; b, W Wᵀ + σ² I) per sample, from the model's decoder weights."""
    w = torch.cat([model.decoders[m][1].weight for m in names]).detach().double()
    b = torch.cat([model.decoders[m][1].bias for m in names]).detach().double()
    cov = w @ w.T + SIGMA**2 * torch.eye(len(b), dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(b, cov)
    return dist.log_prob(torch.cat([x[m] for m in names], -1).double())


def linear_gaussian_data(model: MultimodalVAE, n: int = 32, seed: int = 1) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 1, generator=g)
    data = {}
    for m in DIMS:
        lin = model.decoders[m][1]
        noise = SIGMA * torch.randn(n, lin.out_features, generator=g)
        data[m] = (lin(z) + noise).detach()
    return MultimodalDataset(data)
