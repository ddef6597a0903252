"""The body of a train job: build the model, train with resume, publish once, maybe push.

Training runs in `<job>/train/` (checkpoints, metrics.jsonl, model/); `fit(resume=True)` picks
up the last checkpoint after a redelivery. Publishing is atomic (the store renames a finished
folder into place) and idempotent (a version whose source names this job is reused).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.training.early_stopping import REASON as EARLY_STOPPING
from workers.context import JobContext
from workers.jobs import artifact_files
from workers.specs import TrainSpec
from workers.train_setup import outcome, prepare

TIME_LIMIT_MARGIN_S = 60.0


def publish(ctx: JobContext, model_dir: Any, name: str) -> tuple[dict[str, Any], Path]:
    """Add the trained model to the store once (a version made by this job is reused): what
    the job record says about it, and its folder. The record names the model by store name and
    version only: server paths stay out of what callers see."""
    from core.store import ModelStore

    store = ModelStore(ctx.settings.resolved_store_dir)
    job_id = ctx.job["id"]
    for version in store.versions(name):
        info = store.info(name, version)
        if (info.source or {}).get("job_id") == job_id:
            return {"name": name, "version": version, "reused": True}, info.path
    info = store.add_folder(model_dir, name, source={"job_id": job_id, "origin": "mmvae-job"})
    return {"name": name, "version": info.version, "reused": False}, info.path


def _push(spec: TrainSpec, path: str) -> dict[str, Any]:
    from core.models.pretrained import push

    target = spec.push_to_hub
    assert target is not None
    try:
        pushed = push(
            path,
            target.repo_id,
            revision=target.revision,
            private=target.private,
            token=os.environ.get("HF_TOKEN") or None,
        )
    except Exception as err:  # the model is published locally; report the push problem
        return {"repo_id": target.repo_id, "error": f"{type(err).__name__}: {err}"}
    return {"repo_id": target.repo_id, **{k: str(v) for k, v in vars(pushed).items()}}


def train_body(ctx: JobContext) -> dict[str, Any]:
    from core.training import ProgressBar, TimeLimit, Trainer
    from workers.progress import JobProgress

    spec = TrainSpec.model_validate(ctx.job["spec"])
    out = ctx.folder / "train"
    progress = JobProgress(ctx.store, ctx.job["id"], ctx.cancel, ctx.settings.progress_interval_s)
    soft, _ = ctx.settings.time_limits("train")
    budget = max(soft - min(TIME_LIMIT_MARGIN_S, soft * 0.05), 1.0)
    if spec.resources.world_size > 1:
        from workers.train_ranks import launch

        summary = launch(ctx, spec, out, progress, budget)
    else:
        model, train, test, config = prepare(ctx.settings, spec, out)
        callbacks = [progress, ProgressBar(force=False), TimeLimit(budget)]
        trainer = Trainer(model, train, test, config, callbacks, dataset_name=spec.dataset)
        summary = outcome(trainer.fit(resume=True), progress.resumed_from_epoch, 1)
    ctx.attempt.update(
        resumed_from_epoch=summary["resumed_from_epoch"], epochs=summary["epochs_run"]
    )
    stopped, reason = summary.pop("stopped_early"), summary.pop("stop_reason")
    artifacts = artifact_files(out / "metrics.jsonl", ctx.folder)
    if stopped and reason and reason.startswith(EARLY_STOPPING):
        summary["stop_reason"] = reason  # a finished run: published as any other
    elif stopped:
        if reason == "cancelled":
            return {"state": "cancelled", "result": summary, "artifacts": artifacts}
        return {
            "state": "failed",
            "error": f"training stopped: {reason} (setting "
            "MMVAE_TRAIN_SOFT_TIME_LIMIT_S); the checkpoint is kept in the job folder",
            "result": summary,
            "artifacts": artifacts,
        }
    name = spec.name or f"{spec.model['model_type']}-{ctx.job['id'][:8]}"
    summary["model"], stored = publish(ctx, out / "model", name)
    if spec.push_to_hub is not None:
        summary["hub"] = _push(spec, str(stored))
    artifacts += artifact_files(out / "model", ctx.folder)
    return {"state": "succeeded", "result": summary, "artifacts": artifacts}
