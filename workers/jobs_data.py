"""The bodies of augment and evaluate jobs: both read a stored model and write artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from workers import datasets
from workers.context import JobContext
from workers.jobs import artifact_files
from workers.progress import JobCancelled, WorkProgress
from workers.specs import AugmentSpec, EvaluateSpec, split_model_ref


def _load_model(ctx: JobContext, ref: str) -> tuple[Any, Path]:
    from core.models.pretrained import load_folder
    from core.store import ModelStore

    name, version = split_model_ref(ref)
    path = ModelStore(ctx.settings.resolved_store_dir).get(name, version)
    return load_folder(path), path


def _sampler(ctx: JobContext, spec: AugmentSpec, model: Any, path: Path) -> Any:
    """The saved sampler when it is the one asked for; else a new one fitted on data."""
    import torch

    from core.samplers import build_sampler

    saved = model.sampler
    if saved is not None and spec.sampler in (None, saved.name):
        return saved
    sampler = build_sampler(spec.sampler or "prior")
    data = None
    if sampler.needs_data:
        reference = spec.fit_dataset
        training = path / "training.json"
        if reference is None and training.is_file():
            reference = json.loads(training.read_text()).get("dataset")
        if reference is None:
            raise ValueError(f"fit_dataset: required to fit the {sampler.name} sampler")
        data = datasets.load(ctx.settings, reference, "train", in_memory=True)
    return sampler.fit(model, data, generator=torch.Generator().manual_seed(spec.seed))


def augment_body(ctx: JobContext) -> dict[str, Any]:
    from core.augment import augment

    spec = AugmentSpec.model_validate(ctx.job["spec"])
    model, path = _load_model(ctx, spec.model)
    sampler = _sampler(ctx, spec, model, path)
    target = ctx.folder / "synthetic.npz"
    tmp = ctx.folder / ".synthetic.partial.npz"
    progress = WorkProgress(ctx.store, ctx.job["id"], ctx.cancel, ctx.settings.progress_interval_s)
    try:
        augment(model, spec.n, sampler=sampler, seed=spec.seed, output=tmp,
                categorical=spec.categorical,
                on_progress=lambda done, n: progress.report(done, n, "sampling"))  # fmt: skip
    except JobCancelled:
        tmp.unlink(missing_ok=True)
        return {"state": "cancelled"}
    os.replace(tmp, target)
    digest = datasets.store_file(ctx.settings, target)
    result = {"n": spec.n, "sampler": sampler.name, "dataset": f"{datasets.PREFIX}{digest}"}
    return {"state": "succeeded", "result": result, "artifacts": ["synthetic.npz"]}


def evaluate_body(ctx: JobContext) -> dict[str, Any]:
    from core.metrics.evaluate import evaluate

    spec = EvaluateSpec.model_validate(ctx.job["spec"])
    model, _ = _load_model(ctx, spec.model)
    data = datasets.load(ctx.settings, spec.dataset, spec.split, in_memory=True)
    out = ctx.folder / "evaluation"
    progress = WorkProgress(ctx.store, ctx.job["id"], ctx.cancel, ctx.settings.progress_interval_s)
    try:
        report = evaluate(
            model,
            data,
            metrics=spec.metrics,
            output_dir=out,
            k=spec.k,
            seed=spec.seed,
            batch_size=spec.batch_size,
            n_samples=spec.n_samples,
            on_metric=lambda name, done, total: progress.report(done, total, name or None),
        )
    except JobCancelled:  # between two metrics
        return {"state": "cancelled", "artifacts": artifact_files(out, ctx.folder)}
    return {
        "state": "succeeded",
        "result": {"report": report},
        "artifacts": artifact_files(out, ctx.folder),
    }
