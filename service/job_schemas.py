"""The OpenAPI description of the jobs and datasets routes: the job record, the dataset
summary, and the request bodies those routes read themselves (a job spec is validated by
`workers.specs.validate_spec`, which also checks it against the deployment; an upload is a
raw or multipart stream), so FastAPI cannot infer them from the signatures.

Records are validated against these models in the tests (`extra="forbid"`), so a field the
server adds without describing it fails there.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from workers.specs import JobSpec

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class _Described(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArtifactLink(_Described):
    name: str = Field(description="path inside the job's folder")
    url: str


class JobLinks(_Described):
    self: str
    events: str = Field(description="server-sent events: the record whenever it changes")


class JobRecord(_Described):
    """A job as the API shows it."""

    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    type: Literal["train", "augment", "evaluate"]
    state: JobState
    spec: dict[str, Any] = Field(description="the submitted spec, as validated")
    created: str
    started: str | None
    finished: str | None
    updated: str | None
    progress: dict[str, Any] = Field(description="epoch, step, metrics, ETA while it runs")
    error: str | None = Field(description="why it failed; server folders appear as <data>")
    result: dict[str, Any]
    artifacts: list[ArtifactLink]
    cancel_requested: bool
    attempts: int = Field(ge=0, description="deliveries so far (a crashed worker's job reruns)")
    links: JobLinks
    age_s: float = Field(ge=0)


class JobList(_Described):
    jobs: list[JobRecord]


class DatasetSummary(_Described):
    id: str = Field(description="sha256 of an upload, or a builtin's name")
    reference: str = Field(description="what job specs name it by")
    modalities: list[dict[str, Any]]
    bytes: int | None = Field(None, description="size of an upload")
    n: int | None = Field(None, description="samples in an upload")
    missing_rate: dict[str, float] | None = Field(None, description="per modality")
    has_labels: bool | None = None
    splits: list[str] | None = Field(None, description="a manifest's split column values")


def link_to(path: str, method: str, parameter: str) -> dict[str, Any]:
    """An OpenAPI link from a response whose body has an `id` to the operation `method path`
    taking it as `parameter` (clients and schemathesis's stateful mode follow them)."""
    return {
        "operationRef": "#/paths/" + path.replace("/", "~1") + "/" + method,
        "parameters": {parameter: "$response.body#/id"},
    }


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "an .npz in the project's format, or a manifest CSV (text/csv, or a "
        "multipart file named *.csv) whose cells name files under MMVAE_MANIFEST_ROOT, as the "
        "raw body or the multipart field `file` (streamed to disk; MMVAE_MAX_DATASET_BYTES, "
        "MMVAE_DATASETS_QUOTA_BYTES)",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def install_openapi(app: FastAPI) -> None:
    """Generate the schema as FastAPI does, then describe POST /v1/jobs's body as the union of
    job specs (their definitions joined to the components)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        submit = schema.get("paths", {}).get("/v1/jobs", {}).get("post")
        if submit is not None:
            spec = TypeAdapter(JobSpec).json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in spec.pop("$defs", {}).items():
                if components.setdefault(name, definition) != definition:
                    raise RuntimeError(f"OpenAPI: two different schemas are named {name}")
            content = submit["requestBody"]["content"]["application/json"]
            content["schema"] = spec
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
