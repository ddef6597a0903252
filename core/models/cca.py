"""Multi-set canonical correlation of a batch of codes, as a differentiable loss (DCCAE).

For M views with codes Z_m [N, D]: Σ the covariance of [Z_1 … Z_M], Σ_mm its diagonal blocks,
W = blockdiag((1 − r) Σ_mm + r I) the ridge-regularised within-view covariances. The canonical
correlations are the generalised eigenvalues of (Σ − blockdiag(Σ_mm) + W, W): with M = 2 and
r = 0 they are 1 ± ρ_i for the classical canonical correlations ρ_i. The loss is minus the sum
of the top `k`, computed as the eigenvalues of L^{-1} (Σ − blockdiag(Σ_mm) + W) L^{-T} with
W = L Lᵀ (torch.linalg: Cholesky, triangular solves, eigvalsh; the ridge keeps W positive
definite on small batches).
"""

from __future__ import annotations

import torch
from torch import Tensor


def multiset_cca_loss(codes: list[Tensor], ridge: float, k: int) -> Tensor:
    """−(sum of the top `k` generalised eigenvalues) for codes [N, D_m] of N paired samples,
    computed in float64."""
    n = codes[0].shape[0]
    centred = [(z - z.mean(0)).double() for z in codes]
    joint = torch.cat(centred, dim=1)
    total = joint.T @ joint / (n - 1)
    blocks = [z.T @ z / (n - 1) for z in centred]
    eye = [torch.eye(len(c), dtype=c.dtype, device=c.device) for c in blocks]
    within = torch.block_diag(
        *[(1 - ridge) * c + ridge * i for c, i in zip(blocks, eye, strict=True)]
    )
    between = total - torch.block_diag(*blocks) + within
    # L^{-1} B L^{-T} with W = L Lᵀ has W^{-1/2} B W^{-1/2}'s eigenvalues; Cholesky's gradient has
    # no 1/(λ_i − λ_j) terms, so it stays finite when codes collapse onto repeated eigenvalues
    lower = torch.linalg.cholesky(within)
    half = torch.linalg.solve_triangular(lower, between, upper=False)
    whitened = torch.linalg.solve_triangular(lower, half.T, upper=False)
    eigenvalues = torch.linalg.eigvalsh((whitened + whitened.T) / 2)  # ascending
    return -eigenvalues.flip(0)[:k].sum().to(codes[0].dtype)
