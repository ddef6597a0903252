"""Typed request and response bodies of the HTTP API (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OutputEncoding = Literal["tensor", "nested", "png"]
Seed = Annotated[int | None, Field(None, ge=0, lt=2**63, description="fixes the random draws")]
ModalityName = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON true is not the number 1


class TensorPayload(_Strict):
    """A dense float32 tensor: `shape` [B, *modality shape] and `data` row-major, flat."""

    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=5)
    data: list[float]


SampleValue = float | int | str | list[Any] | None
ModalityInput = TensorPayload | list[SampleValue]
Inputs = Annotated[
    dict[ModalityName, ModalityInput],
    Field(
        description="modality → `{shape, data}`, or one entry per sample: a nested list, a class "
        "index (categorical), a base64 PNG (image), a string (text), or null for a missing "
        "modality",
        examples=[{"label": [3]}],
    ),
]


class OutputOptions(_Strict):
    encoding: OutputEncoding = Field(
        "tensor", description="tensor: flat `data`; nested: nested lists; png: images as PNG"
    )
    png_scale: int = Field(1, ge=1, le=32, description="upscaling of PNG outputs (nearest)")


class EncodeRequest(OutputOptions):
    inputs: Inputs
    n_samples: int = Field(0, ge=0, description="latent draws to return (0: none)")
    seed: Seed = None


class GenerateRequest(OutputOptions):
    inputs: Inputs
    targets: list[ModalityName] | None = Field(
        None, min_length=1, description="modalities to produce (default: every modality)"
    )
    n_samples: int = Field(1, ge=1, description="draws per input sample")
    mean_latent: bool = Field(False, description="decode the posterior mean (deterministic)")
    seed: Seed = None

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"inputs": {"label": [3]}, "targets": ["image"], "n_samples": 2}]
        },
    )


class ReconstructRequest(OutputOptions):
    inputs: Inputs
    targets: list[ModalityName] | None = Field(
        None, min_length=1, description="modalities to reconstruct (default: every modality)"
    )
    cross: bool = Field(True, description="also generate from each input modality alone")
    n_samples: int = Field(1, ge=1)
    mean_latent: bool = Field(True, description="decode the posterior mean")
    seed: Seed = None


class SampleRequest(OutputOptions):
    n: int = Field(1, ge=1, description="number of synthetic samples")
    sampler: str = Field("prior", max_length=64, description="prior, or the model's fitted one")
    modalities: list[ModalityName] | None = Field(
        None, min_length=1, description="default: every modality"
    )
    seed: Seed = None


class LogLikelihoodRequest(_Strict):
    inputs: Inputs
    k: int = Field(100, ge=1, description="importance samples per input sample")
    given: list[ModalityName] | None = Field(
        None,
        min_length=1,
        description="conditional log p(other inputs | given); default: joint log p(inputs)",
    )
    seed: Seed = None


class BuiltinDataset(_Strict):
    kind: Literal["builtin"] = "builtin"
    name: str = Field("digits", max_length=64)
    split: Literal["train", "test", "all"] = "test"


class UploadedDataset(_Strict):
    kind: Literal["npz"] = "npz"
    data_base64: str = Field(description="an .npz dataset file, base64-encoded")


class EvaluateRequest(_Strict):
    dataset: Annotated[BuiltinDataset | UploadedDataset, Field(discriminator="kind")]
    metrics: list[str] | None = Field(
        None, min_length=1, description="metric names; default: the standard set"
    )
    seed: Seed = None


# ---- responses ------------------------------------------------------------------------------
class TensorOut(BaseModel):
    """An output tensor: `shape`, and `data` (flat or nested) or `png` (base64, images);
    categorical outputs also carry `classes`, the argmax over the last dimension, and text
    modalities (a vocabulary) `text`, the decoded strings."""

    shape: list[int]
    data: list[Any] | None = None
    png: list[Any] | None = None
    classes: list[Any] | None = None
    text: list[Any] | None = None


class LatentOut(BaseModel):
    mean: TensorOut = Field(
        description="posterior mean [B, D] ([S, B, D] where it depends on another space's draws)"
    )
    scale: TensorOut = Field(description="posterior standard deviation, shaped like mean")
    samples: TensorOut | None = Field(None, description="latent draws [S, B, D]")


class EncodeResponse(BaseModel):
    model: str
    space: str = Field(description="the model's primary latent space: mean, scale, samples")
    mean: TensorOut = Field(description="posterior mean [B, D] of the primary space")
    scale: TensorOut = Field(description="posterior standard deviation [B, D] of the primary space")
    samples: TensorOut | None = Field(None, description="latent draws [S, B, D], primary space")
    spaces: dict[str, LatentOut] = Field(description="every latent space of the model, by name")
    clusters: TensorOut | None = Field(
        None,
        description="models with a clustered prior (cmvae): q(cluster | codes) [B, C], averaged "
        "over the draws, and `classes`, each sample's most probable cluster",
    )


class GenerateResponse(BaseModel):
    model: str
    outputs: dict[str, TensorOut] = Field(description="modality → [S, B, *shape]")
    seed: int | None = None


class CrossReconstruction(BaseModel):
    rows: list[int] = Field(description="the input samples that observe the source modality")
    outputs: dict[str, TensorOut] = Field(description="modality → [S, len(rows), *shape]")


class ReconstructResponse(BaseModel):
    model: str
    reconstructions: dict[str, TensorOut] = Field(description="from every input modality")
    cross: dict[str, CrossReconstruction] = Field(
        default_factory=dict, description="source modality → generation from it alone"
    )
    seed: int | None = None


class SampleResponse(BaseModel):
    model: str
    sampler: str
    outputs: dict[str, TensorOut] = Field(description="modality → [n, *shape]")
    seed: int | None = None


class LogLikelihoodResponse(BaseModel):
    model: str
    log_likelihood: list[float] = Field(description="per input sample")
    k: int
    given: list[str] | None = None
    targets: list[str] | None = None


class EvaluateResponse(BaseModel):
    model: str
    n_samples: int
    metrics: dict[str, Any]


class ModalityInfo(BaseModel):
    name: str
    kind: str
    shape: list[int]
    likelihood: str
    accepts: list[str] = Field(description="input encodings this modality accepts")
    outputs: list[str] = Field(description="output encodings available")


class ModelSource(BaseModel):
    kind: Literal["demo", "store", "hub"]
    name: str | None = None
    version: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    sha: str | None = None


class LatentSpaceInfo(BaseModel):
    dim: int
    family: str = Field(description="prior family: normal or laplace")
    conditional: bool = Field(description="its prior depends on other spaces (a hierarchy)")


class ModelInfo(BaseModel):
    name: str
    model_type: str
    latent_dim: int
    latent_spaces: dict[str, LatentSpaceInfo] = Field(description="the model's latent spaces")
    primary_space: str = Field(description="the space `encode` reports as mean/scale/samples")
    modalities: list[ModalityInfo]
    samplers: list[str] = Field(
        description="samplers `sample` accepts (none: no unconditional samples)"
    )
    generates: list[str] = Field(description="the modalities `generate` can produce")
    requires: list[str] = Field(
        description="modalities every input sample must have (a conditional model's conditions)"
    )
    likelihood: bool = Field(
        True, description="whether /log-likelihood applies (false: a deterministic autoencoder)"
    )
    kept_dimensions: list[int] | None = Field(
        None,
        description="dimensions of the shared latent used at prediction, for a sparse model "
        "with a threshold (the others are zeroed); null: all of them",
    )
    parameters: int = Field(description="the model's parameter count (its size)")
    source: ModelSource
    loaded_at: str
    ready: bool
    config: dict[str, Any]


class ModelList(BaseModel):
    models: list[ModelInfo]


class StoreSpec(_Strict):
    kind: Literal["store"] = "store"
    name: str = Field(min_length=1, max_length=96)
    version: str = Field("latest", min_length=1, max_length=96)


class HubSpec(_Strict):
    kind: Literal["hub"] = "hub"
    repo_id: str = Field(min_length=1, max_length=200)
    revision: str | None = Field(None, max_length=255, description="a commit sha (pinned)")


class DemoSpec(_Strict):
    kind: Literal["demo"] = "demo"


class LoadRequest(_Strict):
    name: str | None = Field(
        None, min_length=1, max_length=96, description="serving name (default: from the source)"
    )
    source: Annotated[StoreSpec | HubSpec | DemoSpec, Field(discriminator="kind")]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting the JSON error body for each status code."""
    return {code: {"model": ErrorBody} for code in codes}


# ---- latent maps and decoding (service/routes/latent.py) ------------------------------------
SpaceName = Annotated[str, Field(min_length=1, max_length=64, description="a latent space name")]


class StoredDataset(_Strict):
    """An .npz dataset: one uploaded with POST /v1/datasets (`id`), or sent inline
    (`data_base64`, as `evaluate` takes it); exactly one of the two."""

    kind: Literal["npz"] = "npz"
    id: str | None = Field(
        None, min_length=1, max_length=80, description="sha256 or 'dataset:<sha256>' of an upload"
    )
    data_base64: str | None = Field(None, description="an .npz dataset file, base64-encoded")

    @model_validator(mode="after")
    def _one_source(self) -> StoredDataset:
        if (self.id is None) == (self.data_base64 is None):
            raise ValueError("give exactly one of id and data_base64")
        return self


class LatentMapRequest(_Strict):
    dataset: Annotated[BuiltinDataset | StoredDataset, Field(discriminator="kind")]
    n: int = Field(
        500, ge=1, description="rows mapped, spread evenly over the dataset (MMVAE_MAX_MAP_POINTS)"
    )
    method: Literal["pca", "tsne", "umap"] = Field(
        "pca", description="pca (torch), tsne (scikit-learn) or umap (needs umap-learn)"
    )
    space: SpaceName | None = Field(None, description="default: the model's primary space")
    given: list[ModalityName] | None = Field(
        None, min_length=1, description="modalities to encode from (default: all each row has)"
    )
    seed: Seed = None

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"dataset": {"kind": "builtin", "name": "digits"}, "n": 300}]
        },
    )


class LatentMapResponse(BaseModel):
    model: str
    method: str
    space: str
    n: int = Field(description="rows mapped (fewer than asked when the dataset is smaller)")
    rows: list[int] = Field(description="each point's row in the dataset")
    points: list[list[float]] = Field(description="[n, 2] map coordinates")
    labels: list[int | None] = Field(description="the rows' dataset labels (null: none)")
    means: TensorPayload = Field(
        description="posterior means [n, D] of `space` (what /decode takes as `latent`)"
    )
    explained_variance: list[float] | None = Field(
        None, description="PCA: the share of the means' variance along each axis"
    )


class DecodeRequest(OutputOptions):
    latent: TensorPayload = Field(description="codes [B, D] of `space`")
    space: SpaceName | None = Field(None, description="default: the model's primary space")
    targets: list[ModalityName] | None = Field(
        None,
        min_length=1,
        description="modalities to decode (default: every one the model generates from `space`)",
    )
    seed: Seed = None


class DecodeResponse(BaseModel):
    model: str
    outputs: dict[str, TensorOut] = Field(description="modality → decoder means [B, *shape]")
    seed: int | None = None
