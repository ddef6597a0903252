"""2-D maps of latent codes for plotting: PCA (torch), t-SNE (scikit-learn) or UMAP (the optional
umap-learn package). Each takes codes [n, D] and gives coordinates [n, 2], the same for the same
codes and seed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch import Tensor

TSNE_ITERATIONS = 500  # scikit-learn's default is 1000; 500 gives the same picture in half the time


def missing_package(method: str) -> str | None:
    """Why `method` cannot run in this process (its optional package is absent); None if it can."""
    if method == "umap" and importlib.util.find_spec("umap") is None:
        return (
            "umap needs the optional package umap-learn, not installed on this server "
            "(pip install umap-learn); use pca or tsne"
        )
    return None


def pca(codes: Tensor) -> tuple[Tensor, Tensor]:
    """The centred codes projected on their top two principal directions [n, 2] (each direction's
    sign fixed so that its largest loading is positive), and the share of the variance along
    each [2]; an axis the codes do not span (D or n below 2) is zero."""
    centred = codes.double() - codes.double().mean(0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(2, vh.shape[0])
    directions = vh[:k]
    signs = directions.gather(1, directions.abs().argmax(1, keepdim=True)).sign()
    directions = directions * torch.where(signs == 0, 1.0, signs)
    points = torch.zeros(len(codes), 2, dtype=torch.float64)
    points[:, :k] = centred @ directions.T
    power = singular**2
    shares = torch.zeros(2, dtype=torch.float64)
    if float(power.sum()) > 0:
        shares[:k] = power[:k] / power.sum()
    return points.float(), shares.float()


def tsne(codes: Tensor, seed: int, threads: int | None) -> Tensor:
    """t-SNE coordinates [n, 2] (Barnes-Hut, PCA initialisation, perplexity 30 or less for a
    few points), using at most `threads` OpenMP threads (None: scikit-learn's default)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(codes)
    if n < 2:
        return torch.zeros(n, 2)
    perplexity = min(30.0, max(1.0, (n - 1) / 3))
    with threadpool_limits(limits=threads, user_api="openmp"):
        layout = TSNE(
            2, perplexity=perplexity, init="pca", random_state=seed, max_iter=TSNE_ITERATIONS
        ).fit_transform(codes.double().numpy())
    return torch.from_numpy(layout).float()


def umap(codes: Tensor, seed: int, threads: int | None) -> Tensor:
    """UMAP coordinates [n, 2] (15 neighbours, fewer for a few points)."""
    import umap as umap_learn  # optional: `missing_package` checks it first
    from threadpoolctl import threadpool_limits

    n = len(codes)
    if n < 4:  # its spectral initialisation needs more points than dimensions + 1
        return pca(codes)[0]
    with threadpool_limits(limits=threads):
        reducer = umap_learn.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
        layout = reducer.fit_transform(codes.double().numpy())
    return torch.as_tensor(layout).float()


NEIGHBOUR_METHODS: dict[str, Callable[[Tensor, int, int | None], Tensor]] = {
    "tsne": tsne,
    "umap": umap,
}


def project(
    codes: Tensor, method: str, seed: int, threads: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """Coordinates [n, 2] of `codes` [n, D] by `method`, and for PCA the variance shares [2]."""
    if method == "pca":
        return pca(codes)
    return NEIGHBOUR_METHODS[method](codes, seed, threads), None
