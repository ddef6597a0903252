"""Datasets for jobs: upload an .npz (validated, size-limited, stored by sha256), describe one.

Upload as a raw `application/octet-stream` body or multipart field `file`. Jobs name a dataset
as `dataset:<sha256>` (or the bare hash), or a built-in name such as `digits`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from core.data import DatasetError
from service.deps import AdminKey
from service.errors import ApiError, invalid, not_found
from service.schemas import error_responses
from workers import datasets

router = APIRouter(
    prefix="/v1/datasets",
    tags=["datasets"],
    dependencies=[AdminKey],
    responses=error_responses(401, 403, 404, 413, 422),
)
DatasetId = Annotated[str, Path(max_length=80, description="sha256, 'dataset:<sha256>' or name")]


async def _body(request: Request, limit: int) -> bytes:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4, max_part_size=limit)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise invalid("file", "multipart upload needs a file field named 'file'")
        content = await upload.read(limit + 1)
    else:
        content = b""
        async for chunk in request.stream():
            content += chunk
            if len(content) > limit:
                break
    if len(content) > limit:
        raise ApiError(
            413,
            "body_too_large",
            f"file: dataset exceeds {limit} bytes (setting MMVAE_MAX_DATASET_BYTES)",
            "file",
        )
    if not content:
        raise invalid("file", "empty upload; send the .npz as the body or as multipart 'file'")
    return content


@router.post("", status_code=201, summary="upload an .npz dataset in the project's format")
async def upload(request: Request) -> JSONResponse:
    settings = request.app.state.jobs.settings
    content = await _body(request, settings.max_dataset_bytes)
    try:
        digest, summary, created = await asyncio.to_thread(datasets.store_upload, settings, content)
    except DatasetError as err:
        message = str(err)
        field = message.split(":", 1)[0] if ":" in message else "file"
        raise ApiError(422, "invalid_dataset", message, field) from None
    return JSONResponse(
        summary,
        status_code=201 if created else 200,
        headers={"Location": f"/v1/datasets/{digest}"},
    )


@router.get("/{dataset_id}", summary="modalities, shapes, size and missing rates")
def describe(request: Request, dataset_id: DatasetId) -> dict[str, Any]:
    try:
        return datasets.describe(request.app.state.jobs.settings, dataset_id)
    except datasets.DatasetRefError:
        raise not_found("dataset", dataset_id, "id") from None
