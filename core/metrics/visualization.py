"""PNG figures: grids of samples, conditional generations and reconstructions of image
modalities (pillow, no display), and training curves from a JSON-lines metrics log."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from core.data.dataset import MultimodalDataset
from core.metrics.common import device_of, modality_kind, observed_all
from core.models.base import MultimodalVAE

PAD = 2


def auto_scale(shape: Sequence[int]) -> int:
    """Integer upscaling so that tiny images (8x8 digits) stay visible: tiles of >= 32 px."""
    return max(1, 32 // max(shape[-2:]))


def make_grid(rows: Tensor, pad: int = PAD, scale: int | None = None) -> Image.Image:
    """Images [R, N, C, H, W] in [0, 1] -> one picture, R rows by N columns, `pad` px apart.

    Size: width N·(W·scale + pad) + pad, height R·(H·scale + pad) + pad.
    """
    if rows.ndim != 5 or rows.shape[2] not in (1, 3):
        raise ValueError(f"make_grid: needs images [R, N, 1|3, H, W], got {list(rows.shape)}")
    r, n, c, h, w = rows.shape
    s = scale or auto_scale((h, w))
    x = rows.detach().float().cpu().clamp(0, 1)
    x = x.repeat_interleave(s, -2).repeat_interleave(s, -1)
    th, tw = h * s, w * s
    canvas = torch.ones(c, r * (th + pad) + pad, n * (tw + pad) + pad)
    for i in range(r):
        for j in range(n):
            top, left = pad + i * (th + pad), pad + j * (tw + pad)
            canvas[:, top : top + th, left : left + tw] = x[i, j]
    arr = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")


def _wrap(x: Tensor, ncol: int) -> Tensor:
    """[N, C, H, W] -> [ceil(N / ncol), ncol, C, H, W], the last row padded with white."""
    n = x.shape[0]
    rows = math.ceil(n / ncol)
    filler = torch.ones(rows * ncol - n, *x.shape[1:], dtype=x.dtype, device=x.device)
    return torch.cat([x, filler]).reshape(rows, ncol, *x.shape[1:])


def _image_modalities(model: MultimodalVAE, names: Sequence[str] | None = None) -> list[str]:
    return [m for m in (names or model.names) if modality_kind(model, m) == "image"]


def _save(img: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path


@torch.no_grad()
def sample_grid(
    model: MultimodalVAE,
    n: int,
    path: str | Path,
    ncol: int = 8,
    modalities: Sequence[str] | None = None,
    sampler: Any = None,
    generator: torch.Generator | None = None,
    scale: int | None = None,
) -> Path:
    """`n` unconditional samples, wrapped `ncol` per row, one block of rows per image modality."""
    mods = _image_modalities(model, modalities)
    if not mods:
        raise ValueError("sample_grid: the model has no image modality")
    out = model.sample(n, sampler, mods, generator)
    ncol = min(ncol, n)
    return _save(make_grid(torch.cat([_wrap(out[m], ncol) for m in mods]), scale=scale), path)


@torch.no_grad()
def conditional_grid(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    given: Sequence[str],
    target: str,
    path: str | Path,
    n: int = 8,
    n_samples: int = 4,
    generator: torch.Generator | None = None,
    scale: int | None = None,
) -> Path:
    """Columns: the first `n` samples observing all of `given`. Rows: the given image
    modalities (inputs), the true target if it is observed, then `n_samples` generations."""
    if modality_kind(model, target) != "image":
        raise ValueError(f"conditional_grid: target {target!r} is not an image modality")
    idx = observed_all(dataset, given)[:n]
    if not len(idx):
        raise ValueError(f"conditional_grid: no sample observes all of {list(given)}")
    b = dataset.batch(idx).to(device_of(model))
    gen = model.generate(b, given, [target], n_samples, generator)[target]  # [S, n, ...]
    shape = gen.shape[2:]
    inputs = [b.data[m].unsqueeze(0) for m in _image_modalities(model, given)]
    inputs = [x for x in inputs if x.shape[2:] == shape]
    truth = torch.where(b.masks[target].view(-1, 1, 1, 1), b.data[target], torch.ones(()))
    return _save(make_grid(torch.cat([*inputs, truth.unsqueeze(0), gen]), scale=scale), path)


@torch.no_grad()
def reconstruction_grid(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    modality: str,
    path: str | Path,
    n: int = 8,
    given: Sequence[str] | None = None,
    generator: torch.Generator | None = None,
    scale: int | None = None,
) -> Path:
    """Two rows: `n` originals of an image modality and their reconstructions from `given`
    (default: the modality itself), decoded from the posterior mean."""
    if modality_kind(model, modality) != "image":
        raise ValueError(f"reconstruction_grid: {modality!r} is not an image modality")
    given = list(given or [modality])
    idx = observed_all(dataset, [modality, *given])[:n]
    b = dataset.batch(idx).to(device_of(model))
    rec = model.generate(b, given, [modality], 1, generator, mean_latent=True)[modality]
    return _save(make_grid(torch.stack([b.data[modality], rec[0]]), scale=scale), path)


def read_metrics_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines metrics log (blank and malformed lines are skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


_AXES = ("step", "global_step", "epoch")


def training_curves(
    metrics_path: str | Path, png_path: str | Path, keys: Sequence[str] | None = None
) -> Path:
    """One panel per numeric metric of the log (or `keys`), against step (else epoch, else the
    record index); records carrying a "split"/"phase" field are drawn as separate lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics_log(metrics_path)
    if not records:
        raise ValueError(f"{metrics_path}: no metrics records")
    axis = next((a for a in _AXES if any(a in r for r in records)), None)
    skip = {*_AXES, "time", "timestamp", "wall_time", "lr"}
    numeric = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    names = (
        list(keys)
        if keys
        else sorted({k for r in records for k, v in r.items() if numeric(v) and k not in skip})
    )
    if not names:
        raise ValueError(f"{metrics_path}: no numeric metrics to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        series: dict[str, tuple[list, list]] = {}
        for i, r in enumerate(records):
            if numeric(r.get(name)):
                group = str(r.get("split", r.get("phase", "")))
                xs, ys = series.setdefault(group, ([], []))
                xs.append(r.get(axis, i) if axis else i)
                ys.append(r[name])
        for group, (xs, ys) in series.items():
            ax.plot(xs, ys, label=group or None, marker="." if len(xs) < 30 else None)
        ax.set_title(name)
        ax.set_xlabel(axis or "record")
        if any(series):
            ax.legend()
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, format="png", dpi=100)
    plt.close(fig)
    return png_path


@torch.no_grad()
def preview_grids(
    model: MultimodalVAE, dataset: Any, n: int = 8, generator: torch.Generator | None = None
) -> dict[str, Image.Image]:
    """Per image modality, a training preview of the first `n` samples: the originals (white
    where missing), their reconstructions from every observed modality (posterior mean), and
    their generation from the other modalities where the model generates it."""
    was_training = model.training
    model.eval()
    b = dataset.batch(slice(0, n)).to(device_of(model))
    grids = {}
    for m in _image_modalities(model):
        truth = torch.where(b.masks[m].view(-1, 1, 1, 1), b.data[m], torch.ones(()))
        rows = [truth, model.generate(b, None, [m], 1, generator, mean_latent=True)[m][0]]
        others = [x for x in model.names if x != m]
        if others and model.generation_error(others, [m]) is None:
            rows.append(model.generate(b, others, [m], 1, generator)[m][0])
        grids[m] = make_grid(torch.stack(rows))
    model.train(was_training)
    return grids
