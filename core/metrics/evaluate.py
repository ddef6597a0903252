"""`evaluate()`: run a list of named metrics on a model and dataset, return a JSON-able report.

Metrics live in a registry (name -> function of an `EvalContext`); each gets its own generator
seeded from `seed`, so a metric's figures do not depend on which others run before it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.data.dataset import MultimodalDataset
from core.metrics.clustering import clustering
from core.metrics.coherence import cross_coherence, joint_coherence
from core.metrics.common import Classifier, has_labels, json_safe, make_generator, modality_kind
from core.metrics.fid import FeatureExtractor, InceptionV3Features, fid_scores
from core.metrics.likelihood import conditional_log_likelihood, joint_nll
from core.metrics.reconstruction import reconstruction
from core.metrics.visualization import (
    conditional_grid,
    reconstruction_grid,
    sample_grid,
    training_curves,
)
from core.models.base import MultimodalVAE

DEFAULT_METRICS = ("likelihood", "coherence", "reconstruction", "clustering", "fid")


@dataclass
class EvalContext:
    """Everything a metric may use; `options` holds metric-specific keyword arguments."""

    model: MultimodalVAE
    dataset: MultimodalDataset
    k: int = 1000
    seed: int = 0
    batch_size: int = 64
    n_samples: int = 1000
    label_modality: str | None = "label"
    classifiers: Mapping[str, Classifier] | None = None
    extractor: FeatureExtractor | Mapping[str, FeatureExtractor] | None = None
    sampler: Any = None
    output_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def generator(self) -> torch.Generator | None:
        return make_generator(self.seed, self.model)


Metric = Callable[[EvalContext], dict[str, Any]]
METRICS: dict[str, Metric] = {}


def register_metric(name: str) -> Callable[[Metric], Metric]:
    """Decorator adding a metric to the registry under `name`."""

    def wrap(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return wrap


@register_metric("likelihood")
def _likelihood(ctx: EvalContext) -> dict[str, Any]:
    """Joint NLL; with option `conditional=True` also log p(x_m | rest) for every modality."""
    if ctx.model.likelihood_error is not None:
        return {"skipped": ctx.model.likelihood_error}
    kw = {"k": ctx.k, "batch_size": ctx.batch_size, "generator": ctx.generator()}
    out: dict[str, Any] = joint_nll(ctx.model, ctx.dataset, **kw)
    if ctx.options.get("conditional") and len(ctx.model.names) > 1:
        est = ctx.options.get("estimator", "ratio")
        out["conditional"] = {
            m: conditional_log_likelihood(
                ctx.model,
                ctx.dataset,
                [o for o in ctx.model.names if o != m],
                [m],
                estimator=est,
                **kw,
            )
            for m in ctx.model.generated
            if ctx.model.generation_error([o for o in ctx.model.names if o != m], [m]) is None
        }
    return out


def _needs_labels(ctx: EvalContext) -> str | None:
    if has_labels(ctx.dataset, ctx.label_modality):
        return None
    return f"the dataset has no labels and no {ctx.label_modality!r} modality"


@register_metric("coherence")
def _coherence(ctx: EvalContext) -> dict[str, Any]:
    """Cross-modal coherence (needs labels) and joint coherence of unconditional samples."""
    out: dict[str, Any] = {}
    common = {"classifiers": ctx.classifiers, "label_modality": ctx.label_modality}
    reason = _needs_labels(ctx)
    if reason:
        out["cross"] = {"skipped": reason}
    else:
        draws = ctx.options.get("coherence_n_samples", 1)
        out["cross"] = cross_coherence(
            ctx.model, ctx.dataset, generator=ctx.generator(), n_samples=draws, **common
        )
    out["joint"] = joint_coherence(
        ctx.model, ctx.n_samples, sampler=ctx.sampler, generator=ctx.generator(), **common
    )
    return out


@register_metric("reconstruction")
def _reconstruction(ctx: EvalContext) -> dict[str, Any]:
    return reconstruction(ctx.model, ctx.dataset, generator=ctx.generator())


@register_metric("clustering")
def _clustering(ctx: EvalContext) -> dict[str, Any]:
    reason = _needs_labels(ctx)
    if reason:
        return {"skipped": reason}
    return clustering(
        ctx.model,
        ctx.dataset,
        given=ctx.options.get("clustering_given"),
        label_modality=ctx.label_modality,
        seed=ctx.seed,
        fit_dataset=ctx.options.get("clustering_fit_dataset"),
        repeats=ctx.options.get("clustering_repeats", 1),
    )


@register_metric("fid")
def _fid(ctx: EvalContext) -> dict[str, Any]:
    """FID per image modality; raw-pixel features unless an extractor or Inception weights
    (option `inception_weights`) are given."""
    extractor = ctx.extractor
    if extractor is None and ctx.options.get("inception_weights"):
        dims = ctx.options.get("inception_dims", 2048)
        extractor = InceptionV3Features.from_weights(ctx.options["inception_weights"], dims)
    return fid_scores(
        ctx.model,
        ctx.dataset,
        extractor,
        n=ctx.n_samples,
        sampler=ctx.sampler,
        generator=ctx.generator(),
        every_subset=ctx.options.get("fid_every_subset", False),
    )


@register_metric("figures")
def _figures(ctx: EvalContext) -> dict[str, Any]:
    """PNG grids for image modalities and training curves (option `metrics_log`)."""
    if ctx.output_dir is None:
        return {"skipped": "no output_dir"}
    model, d, out = ctx.model, ctx.dataset, ctx.output_dir
    images = [m for m in model.generated if modality_kind(model, m) == "image"]
    files: list[str] = []
    if images and model.sampling_error(ctx.sampler) is None:
        grid = sample_grid(
            model, 64, out / "samples.png", sampler=ctx.sampler, generator=ctx.generator()
        )
        files.append(str(grid))
    for m in images:
        if model.generation_error([m], [m]) is None:
            files.append(str(reconstruction_grid(model, d, m, out / f"reconstruction_{m}.png")))
        others = [o for o in model.names if o != m]
        if others and model.generation_error(others, [m]) is None:
            path = out / f"conditional_{'+'.join(others)}_to_{m}.png"
            files.append(
                str(conditional_grid(model, d, others, m, path, generator=ctx.generator()))
            )
    log = ctx.options.get("metrics_log")
    if log and Path(log).is_file():
        files.append(str(training_curves(log, out / "training_curves.png")))
    return {"files": files}


def evaluate(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    metrics: Sequence[str] = DEFAULT_METRICS,
    output_dir: str | Path | None = None,
    k: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    n_samples: int = 1000,
    label_modality: str | None = "label",
    classifiers: Mapping[str, Classifier] | None = None,
    extractor: FeatureExtractor | Mapping[str, FeatureExtractor] | None = None,
    sampler: Any = None,
    on_metric: Callable[[str, int, int], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run `metrics` (names from `METRICS`) and return a JSON-serialisable report; figures go to
    `output_dir` when it is given (the "figures" metric is then added), and so does the report
    as `metrics.json`. `options` go to the metrics (e.g. conditional=True, inception_weights).
    `on_metric(name, done, total)` is called before each metric and once at the end (name "")
    — a progress bar's or a job's progress; it may raise to stop."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown {unknown}; known: {sorted(METRICS)}")
    missing = [m for m in model.names if m not in dataset.data]
    if missing:
        raise ValueError(f"dataset: lacks the model's modalities {missing}")
    out_dir = Path(output_dir) if output_dir is not None else None
    names = list(metrics) + (["figures"] if out_dir and "figures" not in metrics else [])
    ctx = EvalContext(
        model, dataset, k, seed, batch_size, n_samples, label_modality, classifiers,
        extractor, sampler, out_dir, dict(options),
    )  # fmt: skip
    model.eval()
    report: dict[str, Any] = {
        "model_type": model.model_type,
        "dataset": {"n": len(dataset), "missing_rate": dataset.missing_rate()},
        "settings": {"k": k, "seed": seed, "n_samples": n_samples},
        "metrics": {},
        "seconds": {},
    }
    for i, name in enumerate(names):
        if on_metric is not None:
            on_metric(name, i, len(names))
        start = time.perf_counter()
        report["metrics"][name] = METRICS[name](ctx)
        report["seconds"][name] = round(time.perf_counter() - start, 3)
    if on_metric is not None:
        on_metric("", len(names), len(names))
    report = json_safe(report)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
