"""`Trainer`: one training loop for every model, with stages, checkpoints and exact resume.

The model owns its optimisation (`core.models.optimization`): its stages, its named optimizers
and its step; the Trainer builds, checkpoints and restores every optimizer, scheduler and
gradient scaler by name, and tells the model its epoch and stage. Losses are means over samples;
epoch metrics are batch-size-weighted means of step metrics. Shuffling uses a generator seeded
from (seed, epoch), and checkpoints hold every RNG state, so 2 epochs + resume + 2 epochs gives
the same weights as 4 epochs straight (also mid-epoch, also across a stage boundary).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from core.data.batch import Batch
from core.models.optimization import MAIN, Trainable
from core.training import checkpoint as ckpt
from core.training import distributed
from core.training.allocator import keep_freed_memory
from core.training.batches import epoch_seed, iterate, sequential_batches, shuffled_batches
from core.training.callbacks import Callback, MetricsLogger, ProgressBar, TrainerState
from core.training.compiled import CompiledForward
from core.training.config import TrainerConfig
from core.training.denormals import flushing_denormals
from core.training.device_data import DeviceDatasets
from core.training.early_stopping import REASON as EARLY_STOPPING
from core.training.early_stopping import EarlyStopper, split_off_validation
from core.training.freezing import StageFreezer
from core.training.fused_step import FusedStep, unsupported
from core.training.optim import StageSpan, autocast_dtype, plan_stages, resolve_device, span_of
from core.training.optimizers import StageOptimizers
from core.training.previews import Previews
from core.training.result import TrainResult, flat_metrics
from core.training.trackers import TrackerCallback, open_tracker

CHECKPOINTS, BEST, MODEL = "checkpoints", "best", "model"
log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what to change."""


class Trainer:
    """Trains `model` on `train`, evaluating on `eval` after every epoch (when given)."""

    def __init__(
        self,
        model: Trainable,
        train: Dataset,
        eval: Dataset | None = None,
        config: TrainerConfig | dict[str, Any] | None = None,
        callbacks: Sequence[Callback] = (),
        dataset_name: str | None = None,
    ) -> None:
        if isinstance(config, TrainerConfig):
            self.config = config
        else:
            self.config = TrainerConfig.model_validate(config or {})
        cfg = self.config
        if len(train) == 0:  # type: ignore[arg-type]
            raise ValueError("train: the dataset is empty")
        if eval is not None and len(eval) == 0:  # type: ignore[arg-type]
            raise ValueError("eval: the dataset is empty")
        if eval is None and cfg.validation_split is not None:
            train, eval = split_off_validation(train, cfg.validation_split, cfg.seed)
        if cfg.keep_best and eval is None:
            raise ValueError(
                "keep_best: needs an eval dataset (best = lowest eval loss) or validation_split"
            )
        self.model, self.train_data, self.eval_data = model, train, eval
        self.dataset_name = dataset_name
        self.world = distributed.from_environment()
        self.device = resolve_device(cfg, self.world.local_rank if self.world.distributed else None)
        distributed.join(self.world, self.device)
        if cfg.keep_freed_cpu_memory and self.device.type == "cpu":
            keep_freed_memory()
        self.sync = distributed.GradientSync(self.world)
        self.on_device = DeviceDatasets(self.device, cfg.data_on_device, cfg.num_workers)
        self.amp_dtype = autocast_dtype(cfg)
        self.output_dir = None if cfg.output_dir is None else Path(cfg.output_dir).expanduser()
        self.callbacks = list(callbacks)
        if self.world.writes and not any(isinstance(c, MetricsLogger) for c in self.callbacks):
            self.callbacks.append(MetricsLogger())
        if self.world.writes and not any(isinstance(c, ProgressBar) for c in self.callbacks):
            self.callbacks.append(ProgressBar())
        n = len(train)  # type: ignore[arg-type]
        if n < self.world.size:
            raise ValueError(f"train: {n} samples cannot be shared by {self.world.size} processes")
        self.steps_per_epoch = len(self._global_batches(n, 0, 0))
        self.spans: list[StageSpan] = []
        self.optimizers: StageOptimizers | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._compiled: CompiledForward | None = None
        self._fused: FusedStep | None = None
        self._freezer: StageFreezer | None = None
        self.tracking: TrackerCallback | None = None

    # ---- public -----------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.output_dir is None else self.output_dir / CHECKPOINTS

    def fit(self, resume: bool | str | Path = False, overwrite: bool = False) -> TrainResult:
        """Train to `config.epochs`. `resume=True` continues from the last checkpoint in
        output_dir (a fresh start when there is none); a path resumes from that checkpoint.
        A fresh start over existing checkpoints is an error unless `overwrite`. Each stage
        computes gradients only for the parameters it trains (`StageFreezer`); every
        parameter's `requires_grad` is as before once `fit` returns or raises. On the CPU,
        denormal floats are flushed to zero while it runs (`flush_denormals`)."""
        self.model.to(self.device)
        self._freezer = StageFreezer(self.model)
        flush = self.config.flush_denormals and self.device.type == "cpu"
        try:
            with flushing_denormals(flush):
                return self._fit(resume, overwrite)
        finally:
            self._freezer.restore()
            self._freezer = None

    def _fit(self, resume: bool | str | Path, overwrite: bool) -> TrainResult:
        cfg = self.config
        self.spans = plan_stages(self.model.stages, cfg.epochs)
        if self.world.distributed:  # every rank starts from rank 0's weights
            distributed.broadcast_state(self.model)
        if cfg.compile and self._compiled is None:
            self._compiled = CompiledForward(self.model, self.device)
        self.state = TrainerState(
            epochs=cfg.epochs,
            total_steps=self.steps_per_epoch * cfg.epochs,
            steps_per_epoch=self.steps_per_epoch,
            output_dir=self.output_dir,
        )
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._epoch_samples = 0
        self._elapsed_before = 0.0
        self._last_saved: int | None = None
        self._best_metrics: dict[str, float] = {}
        self._early = EarlyStopper(cfg.early_stopping)
        source = self._resume_source(resume, overwrite)
        if source is not None:
            self._restore(ckpt.load_checkpoint(source))
        else:
            self._seed_everything()
            self._start_stage(self.spans[0])
        self._t0 = time.monotonic()
        st = self.state
        self._open_trackers()
        if cfg.preview_every_epochs and not any(isinstance(c, Previews) for c in self.callbacks):
            shown = self.eval_data if self.eval_data is not None else self.train_data
            self.callbacks.append(Previews(self.model, shown, cfg.preview_every_epochs,
                                           cfg.preview_samples, self.tracking))  # fmt: skip
        self._fire("on_train_start")
        for epoch in range(st.completed_epochs + 1, cfg.epochs + 1):
            span = span_of(self.spans, epoch)
            if span.index != st.stage:
                self._start_stage(span)
            st.epoch = epoch
            self._publish_lrs()
            self.model.set_epoch(epoch)
            self._fire("on_epoch_start")
            if self._stop_agreed() or self._train_epoch(epoch):
                break
            self._end_epoch(epoch)
            if self._stop_agreed():
                break
        if st.should_stop:
            self._save_checkpoint()
        return self._finish()

    # ---- epochs and steps ------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _no_autocast(self) -> contextlib.AbstractContextManager:
        """Backward passes run outside autocast (the forward's dtypes are kept by autograd)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, enabled=False)

    def _publish_lrs(self) -> None:
        assert self.optimizers is not None
        st = self.state
        st.lrs = self.optimizers.learning_rates()
        st.lr = st.lrs.get(MAIN, next(iter(st.lrs.values())))

    def _global_batches(self, n: int, epoch: int, skip: int) -> list[list[int]]:
        """The epoch's batches of the whole training set, as one process would take them; in
        a distributed run a last batch smaller than the number of processes is left out."""
        cfg = self.config
        batches = shuffled_batches(n, cfg.batch_size, cfg.seed, epoch, skip, cfg.drop_last)
        return [b for b in batches if len(b) >= self.world.size]

    def _train_epoch(self, epoch: int) -> bool:
        """Run the epoch's remaining steps; True when a callback asked to stop mid-epoch."""
        cfg, st = self.config, self.state
        self.model.train()
        n = len(self.train_data)  # type: ignore[arg-type]
        batches = self._global_batches(n, epoch, self._epoch_samples)
        seed = epoch_seed(cfg.seed, epoch) ^ 0x5EED ^ self.world.rank
        total = len(batches)
        shards = [self.world.shard(b) for b in batches]
        data, indexed = self.on_device(self.train_data), self.on_device.indexes
        loader = iterate(data, shards, self.device, cfg.num_workers, seed, indexed)
        for i, batch in enumerate(loader):
            self.model.set_progress(epoch - 1 + st.step_in_epoch / self.steps_per_epoch)
            self.sync.set_shares(batch.size, len(batches[i]))
            metrics = self._step(batch)
            size = batch.size
            for k, v in metrics.items():
                acc = self._sums.get(k)
                value = v.detach().to(torch.float64) * size
                self._sums[k] = value if acc is None else acc + value
            self._count += size
            self._epoch_samples += len(batches[i])
            st.global_step += 1
            st.step_in_epoch += 1
            st.elapsed = self._elapsed()
            publish = st.global_step % cfg.log_every_steps == 0
            st.step_metrics = {k: float(v) for k, v in metrics.items()} if publish else {}
            self._fire("on_step_end")
            self._stop_agreed()
            last = i == total - 1
            every = cfg.checkpoint_every_steps
            if not last and (st.should_stop or (every and st.global_step % every == 0)):
                self._save_checkpoint()
            if st.should_stop and not last:
                return True
        return False

    def _stop_agreed(self) -> bool:
        """Whether to stop here; in a distributed run every rank takes the stop one rank's
        callbacks asked for (a cancel file seen by one rank first), so all leave together."""
        st = self.state
        if self.world.distributed:
            reason = distributed.agreed_stop_reason(st.stop_reason, self.device, self.world)
            if reason is not None:
                st.request_stop(reason)
        return st.should_stop

    def _step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The model's own step (default: loss, backward, clip, step) on `batch`."""
        optimizers = self.optimizers
        assert optimizers is not None
        optimizers.start_step()
        if self.world.distributed:  # rank 0's batch-norm statistics, as DDP broadcasts them
            distributed.broadcast_state(self.model, parameters=False)
        full = batch.size == self.config.batch_size  # only full batches run the compiled graph
        fused = self._fused
        out = fused.step(batch) if fused is not None and full else None
        if out is None:
            # the compiled forward, unless this is the ordinary first step of a fused stage
            forward = self._compiled if fused is None or not fused.fusing else None
            compiled = forward.active() if forward and full else contextlib.nullcontext()
            with self._autocast(), compiled:
                out = self.model.training_step(batch, optimizers)
            if fused is not None:
                fused.observe()
        return {"loss": out.loss.detach(), **out.metrics, **optimizers.take_metrics()}

    @torch.no_grad()
    def evaluate(self, dataset: Dataset | None = None) -> dict[str, float]:
        """Batch-weighted mean loss and metrics on `dataset` (the eval set) in eval mode.

        Uses its own seeded RNG stream, so evaluation never perturbs training randomness and
        every epoch is scored with the same noise (comparable for keep_best)."""
        dataset = dataset if dataset is not None else self.eval_data
        if dataset is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        n, bs = len(dataset), self.config.effective_eval_batch_size  # type: ignore[arg-type]
        batches = [b for b in map(self.world.shard, sequential_batches(n, bs)) if b]
        devices = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        sums: dict[str, torch.Tensor] = {}
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed)
            data, workers = self.on_device(dataset), self.config.num_workers
            for batch in iterate(data, batches, self.device, workers, 0, self.on_device.indexes):
                with self._autocast():
                    out = self.model(batch)
                for k, v in {"loss": out.loss, **out.metrics}.items():
                    value = v.detach().to(torch.float64) * batch.size
                    sums[k] = sums[k] + value if k in sums else value
        self.model.train(was_training)
        if self.world.distributed:  # every rank scored its shard of each batch
            sums, _ = distributed.reduce_sums(sums, 0, self.device, self.world)
        return {k: float(v) / n for k, v in sums.items()}

    def _end_epoch(self, epoch: int) -> None:
        cfg, st = self.config, self.state
        if self.world.distributed:
            self._sums, self._count = distributed.reduce_sums(
                self._sums, self._count, self.device, self.world
            )
        st.train_metrics = {k: float(v) / self._count for k, v in self._sums.items()}
        if not math.isfinite(st.train_metrics["loss"]):
            raise TrainingError(
                f"epoch {epoch}: the training loss is {st.train_metrics['loss']}; lower "
                "learning_rate or set grad_clip_norm"
            )
        self._sums, self._count, self._epoch_samples = {}, 0, 0
        st.eval_metrics = self.evaluate() if self.eval_data is not None else {}
        monitored = st.eval_metrics.get("loss", st.train_metrics["loss"])
        assert self.optimizers is not None
        self.optimizers.end_epoch(monitored)
        better = st.best_eval_loss is None or monitored < st.best_eval_loss
        if cfg.keep_best and epoch >= cfg.keep_best_from_epoch and better:
            st.best_eval_loss, st.best_epoch = monitored, epoch
            self._best_metrics = {
                **flat_metrics("train", st.train_metrics),
                **flat_metrics("eval", st.eval_metrics),
            }
            self._save_best(epoch)
        st.completed_epochs, st.step_in_epoch = epoch, 0
        st.elapsed = self._elapsed()
        if cfg.early_stopping is not None and self._early.update(st, epoch):
            st.request_stop(
                f"{EARLY_STOPPING}: {cfg.early_stopping.metric} did not improve for "
                f"{cfg.early_stopping.patience} epochs"
            )
        self._fire("on_epoch_end")
        every = cfg.checkpoint_every_epochs
        if epoch == cfg.epochs or (every and epoch % every == 0):
            self._save_checkpoint()

    # ---- stages, seeding, callbacks ------------------------------------------------------------
    def _open_trackers(self) -> None:
        """The config's experiment trackers, as one callback (rank 0 opens the runs)."""
        cfg = self.config
        if not cfg.trackers or self.tracking is not None:
            return
        runs = [open_tracker(s, self.output_dir) for s in cfg.trackers] if self.world.writes else []
        model_config = getattr(self.model, "config", None)
        config = {
            "trainer": cfg.model_dump(mode="json"),
            "model": model_config.model_dump(mode="json") if model_config is not None else None,
            "dataset": self.dataset_name,
        }
        self.tracking = TrackerCallback(runs, config)
        self.callbacks.append(self.tracking)

    def _start_stage(self, span: StageSpan) -> None:
        """Tell the model its stage; fresh optimizers (and schedulers, scalers) for it, and
        gradients only for what they step."""
        self.model.set_stage(span.stage.name)
        assert self._freezer is not None
        self._freezer.restore()  # the optimizers take every parameter that requires gradients
        self.optimizers = StageOptimizers(
            self.model, span.stage, self.config, span.length, self._no_autocast
        )
        self._freezer.freeze_all_but(self.optimizers.parameters())
        if self.world.distributed:
            self.optimizers.sync, self.optimizers.sync_loss = self.sync, self.sync.loss
        self._fused = self._fused_step()
        self.state.stage, self.state.stage_name = span.index, span.stage.name

    def _fused_step(self) -> FusedStep | None:
        """The stage's steps as one compiled graph each (`fused_step`), where they can be."""
        cfg = self.config
        if not (cfg.compile and cfg.fused_step) or self.world.distributed:
            return None
        assert self.optimizers is not None
        reason = unsupported(self.model, self.optimizers, cfg)
        if reason is not None:
            log.info("fused_step: the compiled forward only: %s", reason)
            return None
        assert self._compiled is not None
        return FusedStep(self.model, self.optimizers, cfg.grad_clip_norm, self._compiled.options)

    def _seed_everything(self) -> None:
        seed = self.config.seed
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def _fire(self, hook: str) -> None:
        for cb in self.callbacks:
            if getattr(cb, hook)(self.state) is True:
                self.state.request_stop(type(cb).__name__)

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._t0

    # ---- checkpoints and outputs ------------------------------------------------------------
    def _resume_source(self, resume: bool | str | Path, overwrite: bool) -> Path | None:
        if resume is not False and resume is not True:
            return Path(resume)
        directory = self.checkpoint_dir
        latest = None if directory is None else ckpt.latest_checkpoint(directory)
        if resume is True:
            if directory is None:
                raise ValueError("resume: needs config.output_dir (where checkpoints live)")
            return latest
        if latest is not None:
            if not overwrite:
                raise ValueError(
                    f"output_dir: {self.output_dir} already holds checkpoints; resume to continue "
                    "or overwrite to start over"
                )
            for name in (CHECKPOINTS, BEST, MODEL):
                shutil.rmtree(self.output_dir / name, ignore_errors=True)  # type: ignore[operator]
        return None

    def _checkpoint_state(self) -> dict[str, Any]:
        st = self.state
        assert self.optimizers is not None
        return {
            "model_type": getattr(self.model, "model_type", type(self.model).__name__),
            "config": self.config.model_dump(mode="json"),
            "model": self.model.state_dict(),
            **self.optimizers.state_dict(),
            "rng": ckpt.rng_state(),
            "world_size": self.world.size,
            "progress": {
                "completed_epochs": st.completed_epochs,
                "epoch_samples": self._epoch_samples,
                "step_in_epoch": st.step_in_epoch,
                "global_step": st.global_step,
                "stage": st.stage,
            },
            "sums": dict(self._sums),
            "count": self._count,
            "best": {
                "loss": st.best_eval_loss,
                "epoch": st.best_epoch,
                "metrics": self._best_metrics,
            },
            "last": {"train": st.train_metrics, "eval": st.eval_metrics},
            "early_stopping": self._early.state_dict(),
            "elapsed": self._elapsed(),
        }

    def _save_checkpoint(self) -> None:
        """Rank 0 writes; every rank's random state goes in (each draws its own noise)."""
        if self.checkpoint_dir is None or self._last_saved == self.state.global_step:
            return
        states = distributed.gather(ckpt.rng_state(), self.world)
        if self.world.distributed:  # the epoch's metric sums so far, over every shard
            sums, count = distributed.reduce_sums(self._sums, self._count, self.device, self.world)
        if self.world.writes:
            data = self._checkpoint_state()
            if self.world.distributed:
                data.update(rng_ranks=states, sums=sums, count=count)
            ckpt.save_checkpoint(self.checkpoint_dir, self.state.global_step, data)
        self._last_saved = self.state.global_step

    def _restore(self, data: dict[str, Any]) -> None:
        st, progress = self.state, data["progress"]
        saved_world = data.get("world_size", 1)
        if saved_world != self.world.size:
            raise ckpt.CheckpointError(
                f"checkpoint: written by {saved_world} process(es), this run has "
                f"{self.world.size}; resume with the same number (each process's data shard and "
                "random stream are part of an exact resume), or start a fresh run from its "
                "model/ weights"
            )
        model_type = getattr(self.model, "model_type", type(self.model).__name__)
        if data["model_type"] != model_type:
            raise ckpt.CheckpointError(
                f"checkpoint: holds a {data['model_type']!r} model, not {model_type!r}"
            )
        try:
            self.model.load_state_dict(data["model"], strict=True)
        except RuntimeError as err:
            raise ckpt.CheckpointError(f"checkpoint: weights do not fit the model ({err})") from err
        st.completed_epochs, st.global_step = progress["completed_epochs"], progress["global_step"]
        st.step_in_epoch = progress["step_in_epoch"]
        self._epoch_samples = progress["epoch_samples"]
        span = self.spans[min(progress["stage"], len(self.spans) - 1)]
        self._start_stage(span)
        assert self.optimizers is not None
        try:
            self.optimizers.load_state_dict(ckpt.optimizer_states(data))
        except ValueError as err:
            raise ckpt.CheckpointError(str(err)) from err
        self._sums = {k: v.to(self.device) for k, v in data["sums"].items()}
        self._count = data["count"]
        if self.world.rank:  # the saved sums are every rank's: counted once, on rank 0
            self._sums, self._count = {}, 0
        best = data["best"]
        st.best_eval_loss, st.best_epoch = best["loss"], best["epoch"]
        self._best_metrics = best["metrics"]
        st.train_metrics, st.eval_metrics = data["last"]["train"], data["last"]["eval"]
        self._early.load_state_dict(data.get("early_stopping") or {})
        self._elapsed_before = data["elapsed"]
        self._last_saved = st.global_step
        st.resumed = True
        ckpt.set_rng_state(
            data["rng_ranks"][self.world.rank] if self.world.distributed else data["rng"]
        )

    def _save_best(self, epoch: int) -> None:
        """Keep the best weights: `<output_dir>/best/` (swapped in atomically, by rank 0) or in
        memory."""
        if self.output_dir is None or not self.world.writes:
            self._best_state = {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            }
            return
        info = {"epoch": epoch, "final_metrics": self._best_metrics}
        ckpt.save_pretrained_atomic(self.model, self.output_dir / BEST, info)

    def _load_best(self) -> None:
        if self._best_state is None and self.output_dir is not None:
            from safetensors.torch import load_file

            from core.persistence import WEIGHTS_FILE

            self._best_state = load_file(self.output_dir / BEST / WEIGHTS_FILE)
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state, strict=True)

    def _finish(self) -> TrainResult:
        from core import __version__

        cfg, st = self.config, self.state
        st.elapsed = self._elapsed()
        last = {**flat_metrics("train", st.train_metrics), **flat_metrics("eval", st.eval_metrics)}
        final = last
        if cfg.keep_best and st.best_epoch is not None:
            self._load_best()
            final = dict(self._best_metrics)
        stopped = st.should_stop and st.completed_epochs < cfg.epochs
        info = {
            "trainer": cfg.model_dump(mode="json"),
            "dataset": self.dataset_name,
            "epochs": st.completed_epochs,
            "global_step": st.global_step,
            "stages": [s.stage.name for s in self.spans],
            "final_metrics": final,
            "last_epoch_metrics": last,
            "best_epoch": st.best_epoch,
            "stopped_early": stopped,
            "stop_reason": st.stop_reason,
            "library_version": __version__,
            "wall_time": round(st.elapsed, 3),
        }
        out = self.output_dir
        if out is not None and self.world.writes:
            self.model.save_pretrained(out / MODEL, info)
        self._fire("on_train_end")
        latest = (
            None if self.checkpoint_dir is None else ckpt.latest_checkpoint(self.checkpoint_dir)
        )
        logs = [c.path for c in self.callbacks if isinstance(c, MetricsLogger) and c.path]
        return TrainResult(
            epochs_run=st.completed_epochs,
            global_step=st.global_step,
            train_metrics=dict(st.train_metrics),
            eval_metrics=dict(st.eval_metrics),
            final_metrics=final,
            best_epoch=st.best_epoch,
            best_eval_loss=st.best_eval_loss,
            stopped_early=stopped,
            stop_reason=st.stop_reason,
            wall_time=st.elapsed,
            output_dir=None if out is None else str(out),
            model_dir=None if out is None else str(out / MODEL),
            best_dir=str(out / BEST) if out is not None and st.best_epoch is not None else None,
            checkpoint=None if latest is None else str(latest),
            metrics_log=str(logs[0]) if logs else None,
            trackers=self.tracking.links() if self.tracking is not None else [],
            training_info=info,
        )
