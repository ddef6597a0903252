"""Datasets for jobs: upload an .npz or a manifest CSV (validated, size-limited, stored by
sha256), describe one.

Upload as a raw body or multipart field `file`; a manifest is sent as `text/csv` (or a file
named `*.csv`) and names files under the server's MMVAE_MANIFEST_ROOT. Jobs name a dataset as
`dataset:<sha256>` (or the bare hash), a named dataset, or a built-in name such as `digits`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from core.data import DatasetError
from service.deps import AdminKey
from service.errors import ApiError, invalid, not_found
from service.job_schemas import UPLOAD_BODY, DatasetSummary, link_to
from service.schemas import error_responses
from service.security import KeyFirstRoute
from workers import datasets
from workers.settings import WorkerSettings

router = APIRouter(
    route_class=KeyFirstRoute,
    prefix="/v1/datasets",
    tags=["datasets"],
    dependencies=[AdminKey],
    responses=error_responses(401, 403, 404, 413, 422),
)
DatasetId = Annotated[
    str, PathParam(max_length=80, description="sha256, 'dataset:<sha256>' or name")
]


async def _receive(request: Request, settings: WorkerSettings) -> tuple[Path, bool]:
    """The upload (raw body or multipart field `file`) streamed to a temporary file in the
    datasets folder, in linear time, refused past MMVAE_MAX_DATASET_BYTES or the folder's
    quota (MMVAE_DATASETS_QUOTA_BYTES), and whether it is a manifest CSV. The caller deletes
    the file."""
    limit = settings.max_dataset_bytes
    chunks, manifest = await _upload(request, limit)
    quota = settings.datasets_quota_bytes - datasets.stored_bytes(settings)
    folder = settings.datasets_dir
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".upload-", delete=False) as handle:
        path = Path(handle.name)
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ApiError(
                        413,
                        "body_too_large",
                        f"file: dataset exceeds {limit} bytes (setting MMVAE_MAX_DATASET_BYTES)",
                        "file",
                    )
                if size > quota:
                    raise ApiError(
                        413,
                        "quota_exceeded",
                        f"file: the stored datasets would exceed their quota of "
                        f"{settings.datasets_quota_bytes} bytes (setting "
                        "MMVAE_DATASETS_QUOTA_BYTES); delete datasets or raise it",
                        "file",
                    )
                await asyncio.to_thread(handle.write, chunk)
            if not size:
                raise invalid(
                    "file", "empty upload; send the .npz or manifest as the body or as 'file'"
                )
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)
            raise
    return path, manifest


def _is_csv(content_type: str | None, filename: str | None = None) -> bool:
    return (content_type or "").startswith("text/csv") or (filename or "").endswith(".csv")


async def _upload(request: Request, limit: int) -> tuple[AsyncIterator[bytes], bool]:
    """The upload's bytes as they arrive (the raw body, or the multipart field `file`) and
    whether they are a manifest CSV (content type text/csv, or a file named *.csv)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4, max_part_size=limit)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise invalid("file", "multipart upload needs a file field named 'file'")

        async def parts() -> AsyncIterator[bytes]:
            while chunk := await upload.read(1024 * 1024):
                yield chunk

        return parts(), _is_csv(upload.content_type, upload.filename)
    return request.stream(), _is_csv(request.headers.get("content-type"))


@router.post(
    "",
    status_code=201,
    summary="upload an .npz dataset in the project's format, or a manifest CSV",
    openapi_extra=UPLOAD_BODY,
    response_model=None,
    responses={
        201: {
            "model": DatasetSummary,
            "description": "stored",
            "links": {"GetDataset": link_to("/v1/datasets/{dataset_id}", "get", "dataset_id")},
        },
        200: {"model": DatasetSummary, "description": "already stored (same sha256)"},
    },
)
async def upload(request: Request) -> JSONResponse:
    settings: WorkerSettings = request.app.state.jobs.settings
    path, manifest = await _receive(request, settings)
    try:
        digest, summary, created = await asyncio.to_thread(
            datasets.store_upload, settings, path, manifest
        )
    except DatasetError as err:
        raise ApiError(422, "invalid_dataset", str(err), "file") from None
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse(
        summary,
        status_code=201 if created else 200,
        headers={"Location": f"/v1/datasets/{digest}"},
    )


@router.get(
    "/{dataset_id}",
    summary="modalities, shapes, size and missing rates",
    response_model=None,
    responses={200: {"model": DatasetSummary, "description": "see the schema"}},
)
def describe(request: Request, dataset_id: DatasetId) -> dict[str, Any]:
    try:
        return datasets.describe(request.app.state.jobs.settings, dataset_id)
    except datasets.DatasetRefError:
        raise not_found("dataset", dataset_id, "id") from None
