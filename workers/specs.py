"""Job specs (train / augment / evaluate) and their validation at submission.

Everything that can be checked before a worker runs is checked here, so a bad spec is refused
with 422 and never queued: model type and config fields, trainer config, epochs limit, the
dataset exists and has the model's modalities with matching shapes, the model is in the store.
Validation builds configs only (pydantic), never a model, so it is cheap in the API process.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from workers import datasets
from workers.settings import WorkerSettings


class SpecError(ValueError):
    """A spec the caller must fix; `field` is the dotted path of the offending value."""

    def __init__(self, field: str, message: str, code: str = "invalid_input") -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.code = field, f"{field}: {message}", code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubTarget(_Strict):
    """Push the trained model to the Hub (token from HF_TOKEN in the worker's environment)."""

    repo_id: str
    revision: str | None = None
    private: bool = False


class Resources(_Strict):
    """What a training job runs on: data-parallel processes under torchrun, one GPU each when
    `gpus` is set (NCCL), else CPU processes (gloo)."""

    gpus: int = Field(0, ge=0, le=64, description="GPUs, one process each (0: none)")
    processes: int | None = Field(
        None, ge=1, le=64, description="CPU processes when gpus is 0 (default 1)"
    )

    @property
    def world_size(self) -> int:
        return self.gpus or self.processes or 1


class TrainSpec(_Strict):
    """Train `model` (a model config; modalities default to the dataset's) on `dataset`."""

    type: Literal["train"]
    model: dict[str, Any] = Field(description="model config with model_type; see /v1/models")
    dataset: str = Field(description="built-in name (digits), 'dataset:<sha256>' or the hash")
    trainer: dict[str, Any] = Field(default_factory=dict, description="TrainerConfig fields")
    name: str | None = Field(None, description="store name (default <model_type>-<job id[:8]>)")
    eval: bool = Field(True, description="evaluate on the test split of a built-in dataset")
    missing_ratio: float = Field(0.0, ge=0, lt=1, description="hide modalities at random")
    push_to_hub: HubTarget | None = None
    resources: Resources = Field(
        default_factory=Resources,
        description="{gpus: N} trains data-parallel on N GPUs (torchrun); {processes: N} on "
        "N CPU processes; trainer.batch_size stays the global batch",
    )


class AugmentSpec(_Strict):
    """Draw `n` synthetic samples from a stored model into an .npz dataset artifact."""

    type: Literal["augment"]
    model: str = Field(description="store model 'name' or 'name@version'")
    n: int = Field(gt=0)
    sampler: str | None = Field(
        None, description="prior, gmm, maf, iaf; default: saved, else prior"
    )
    fit_dataset: str | None = Field(None, description="data to fit a new sampler on")
    seed: int = Field(0, ge=0)
    categorical: Literal["sample", "argmax"] = "sample"


class EvaluateSpec(_Strict):
    """Run metrics on a stored model; the report JSON and PNG figures become artifacts."""

    type: Literal["evaluate"]
    model: str = Field(description="store model 'name' or 'name@version'")
    dataset: str = "digits"
    split: Literal["train", "test", "all"] = "test"
    metrics: list[str] = Field(default_factory=lambda: ["likelihood", "reconstruction"])
    k: int = Field(100, gt=0)
    n_samples: int = Field(500, gt=0, le=100_000)
    batch_size: int = Field(64, gt=0, le=100_000)
    seed: int = Field(0, ge=0)


JobSpec = Annotated[TrainSpec | AugmentSpec | EvaluateSpec, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(JobSpec)


def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif item not in ("train", "augment", "evaluate") or parts:
            parts.append(str(item))
    return ".".join(parts) or "body"


def _pydantic(err: ValidationError, prefix: str) -> SpecError:
    first = err.errors()[0]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return SpecError("type", "must be one of train, augment, evaluate")
    return SpecError(_loc(prefix, tuple(first["loc"])), first["msg"])


def split_model_ref(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition("@")
    return name, version or "latest"


def _stored_config(settings: WorkerSettings, ref: str) -> dict[str, Any]:
    from core.persistence import read_config
    from core.store import ModelStore

    name, version = split_model_ref(ref)
    try:
        return read_config(ModelStore(settings.resolved_store_dir).get(name, version))["config"]
    except (FileNotFoundError, ValueError) as err:
        raise SpecError("model", str(err)) from None


def _dataset(settings: WorkerSettings, ref: str, field: str = "dataset") -> dict[str, Any]:
    try:
        return datasets.describe(settings, ref)
    except datasets.DatasetRefError as err:
        raise SpecError(field, str(err).split(": ", 1)[-1]) from None


def _check_modalities(needed: list[dict], have: list[dict], field: str, ref: str) -> None:
    shapes = {m["name"]: list(m["shape"]) for m in have}
    for i, spec in enumerate(needed):
        name = spec.get("name")
        if name not in shapes:
            raise SpecError(
                f"{field}[{i}]",
                f"dataset {ref!r} has no modality {name!r}; it has {sorted(shapes)}",
            )
        if "shape" in spec and list(spec["shape"]) != shapes[name]:
            raise SpecError(
                f"{field}[{i}].shape",
                f"{list(spec['shape'])} does not match the dataset's {shapes[name]} for {name!r}",
            )


def _validate_train(spec: TrainSpec, settings: WorkerSettings) -> None:
    from core.hub.ids import validate_store_name
    from core.models.registry import get_model_class
    from core.training import TrainerConfig

    if "output_dir" in spec.trainer:
        raise SpecError("trainer.output_dir", "set by the worker (the job's folder)")
    try:
        trainer = TrainerConfig.model_validate(spec.trainer)
    except ValidationError as err:
        raise _pydantic(err, "trainer") from None
    _limit("trainer.epochs", trainer.epochs, settings.max_epochs, "MMVAE_MAX_EPOCHS")
    _limit(
        "trainer.batch_size",
        trainer.batch_size,
        settings.max_job_batch_size,
        "MMVAE_MAX_JOB_BATCH_SIZE",
    )
    _check_trackers(spec.trainer.get("trackers") or [], trainer)
    _check_resources(spec.resources, trainer.device, settings)
    devices = settings.devices()
    if trainer.device not in devices:
        raise SpecError(
            "trainer.device",
            f"{trainer.device!r} is not available to the workers; they have {devices} "
            "(setting MMVAE_JOB_DEVICES)",
        )
    model_type = spec.model.get("model_type")
    if not model_type:
        raise SpecError("model.model_type", "required")
    try:
        cls = get_model_class(model_type)
    except ValueError as err:
        raise SpecError("model.model_type", str(err).split(": ", 1)[-1]) from None
    have = _dataset(settings, spec.dataset)["modalities"]
    if "modalities" in spec.model:
        if not isinstance(spec.model["modalities"], list):
            raise SpecError("model.modalities", "must be a list of modality specs")
        _check_modalities(spec.model["modalities"], have, "model.modalities", spec.dataset)
    config = {"modalities": have, **spec.model}
    try:
        cls.config_class.model_validate(config)
    except ValidationError as err:
        raise _pydantic(err, "model") from None
    size = _parameters(config, settings.max_job_parameters)
    _limit("model (parameters)", size, settings.max_job_parameters, "MMVAE_MAX_JOB_PARAMETERS")
    if spec.push_to_hub is not None:
        _check_hub_target(spec.push_to_hub)
    if spec.name is not None:
        try:
            validate_store_name(spec.name)
        except ValueError as err:
            raise SpecError("name", str(err).split(": ", 1)[-1]) from None


def _check_trackers(given: list[dict[str, Any]], trainer: Any) -> None:
    """A job's trackers run where the operator says: their folders are the job's, MLflow's
    server is the worker's MLFLOW_TRACKING_URI, W&B runs offline. A job may not name them."""
    from core.training.trackers import LOCATIONS

    for i, (raw, tracker) in enumerate(zip(given, trainer.trackers, strict=True)):
        for field in LOCATIONS[tracker.kind]:
            if field in raw:
                raise SpecError(
                    f"trainer.trackers[{i}].{field}",
                    "set by the workers (the job's folder, their MLFLOW_TRACKING_URI, W&B "
                    "offline), not by a job",
                )


def _check_resources(resources: Resources, device: str, settings: WorkerSettings) -> None:
    """GPUs the workers have, CPU processes within the setting, one kind at a time."""
    if resources.gpus and resources.processes:
        raise SpecError("resources", "give gpus (one process each) or processes, not both")
    if resources.gpus:
        _limit("resources.gpus", resources.gpus, settings.gpus(), "MMVAE_JOB_GPUS")
        if device not in ("auto", "cuda"):
            raise SpecError("trainer.device", f"{device!r} with resources.gpus: use auto or cuda")
    elif resources.processes:
        _limit(
            "resources.processes",
            resources.processes,
            settings.max_job_processes,
            "MMVAE_MAX_JOB_PROCESSES",
        )


def _limit(field: str, value: int, limit: int, setting: str) -> None:
    if value > limit:
        raise SpecError(
            field,
            f"{value} exceeds the limit of {limit} (setting {setting})",
            "limit_exceeded",
        )


def _parameters(config: dict[str, Any], at_most: int) -> int:
    from core.models import parameter_count

    try:
        return parameter_count(config, at_most)
    except (ValueError, TypeError, RuntimeError) as err:
        raise SpecError("model", f"cannot be built: {err}") from None


def _check_hub_target(target: HubTarget) -> None:
    from core.hub.ids import validate_repo_id, validate_revision

    for field, check, value in (
        ("push_to_hub.repo_id", validate_repo_id, target.repo_id),
        ("push_to_hub.revision", validate_revision, target.revision),
    ):
        try:
            check(value)
        except ValueError as err:
            raise SpecError(field, str(err).split(": ", 1)[-1]) from None


def _validate_augment(spec: AugmentSpec, settings: WorkerSettings) -> None:
    from core.samplers import available_samplers

    if spec.n > settings.max_augment_n:
        raise SpecError(
            "n",
            f"{spec.n} exceeds the limit of {settings.max_augment_n} (setting MMVAE_MAX_AUGMENT_N)",
            "limit_exceeded",
        )
    config = _stored_config(settings, spec.model)
    if spec.sampler is not None and spec.sampler not in available_samplers():
        raise SpecError("sampler", f"unknown {spec.sampler!r}; known: {available_samplers()}")
    if spec.fit_dataset is not None:
        have = _dataset(settings, spec.fit_dataset, "fit_dataset")["modalities"]
        _check_modalities(config["modalities"], have, "fit_dataset", spec.fit_dataset)


def _validate_evaluate(spec: EvaluateSpec, settings: WorkerSettings) -> None:
    from core.metrics.evaluate import METRICS

    unknown = [m for m in spec.metrics if m not in METRICS]
    if unknown or not spec.metrics:
        raise SpecError("metrics", f"unknown {unknown}; known: {sorted(METRICS)}")
    if spec.k > settings.max_eval_k:
        raise SpecError(
            "k", f"{spec.k} exceeds the limit of {settings.max_eval_k} (setting MMVAE_MAX_EVAL_K)"
        )
    config = _stored_config(settings, spec.model)
    have = _dataset(settings, spec.dataset)["modalities"]
    names = {m["name"] for m in have}
    missing = [m["name"] for m in config["modalities"] if m["name"] not in names]
    if missing:
        raise SpecError("dataset", f"{spec.dataset!r} lacks the model's modalities {missing}")


_CHECKS = {"train": _validate_train, "augment": _validate_augment, "evaluate": _validate_evaluate}


def validate_spec(raw: Any, settings: WorkerSettings) -> TrainSpec | AugmentSpec | EvaluateSpec:
    """Parse and check a job spec; raises `SpecError` naming the field at fault."""
    if not isinstance(raw, dict):
        raise SpecError("body", "a JSON object with a 'type' (train, augment, evaluate)")
    try:
        spec = _ADAPTER.validate_python(raw)
    except ValidationError as err:
        raise _pydantic(err, "") from None
    _CHECKS[spec.type](spec, settings)
    return spec
