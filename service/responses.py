"""Content negotiation for inference results: JSON (default), a PNG grid (`Accept: image/png`)
or an .npz download (`Accept: application/x-npz`)."""

from __future__ import annotations

from typing import Literal

from fastapi import Request, Response
from pydantic import BaseModel
from torch import Tensor

from service.codecs import png_grid, to_npz
from service.errors import ApiError

NPZ = "application/x-npz"
PNG = "image/png"
Wanted = Literal["json", "png", "npz"]

BINARY_RESPONSES: dict[int | str, dict] = {
    200: {
        "content": {
            PNG: {"schema": {"type": "string", "format": "binary"}},
            NPZ: {"schema": {"type": "string", "format": "binary"}},
        }
    },
    406: {"description": "no image output for Accept: image/png"},
}


def wanted(request: Request) -> Wanted:
    """The first of JSON, PNG or npz named in the Accept header (JSON when none is)."""
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "*/*", "application/*"):
            return "json"
        if media == PNG:
            return "png"
        if media == NPZ:
            return "npz"
    return "json"


def json_response(body: BaseModel) -> Response:
    """`body` serialised once by pydantic (the same JSON FastAPI would write for it), skipping
    FastAPI's re-validation of a returned model against `response_model`: a measurable share of
    a small model's request cost (bench/RESULTS.md)."""
    return Response(body.model_dump_json(), media_type="application/json")


def npz_response(arrays: dict[str, Tensor], filename: str) -> Response:
    return Response(
        to_npz(arrays),
        media_type=NPZ,
        headers={"Content-Disposition": f'attachment; filename="{filename}.npz"'},
    )


def png_response(images: dict[str, Tensor], scale: int) -> Response:
    """`images`: name → [S, B, C, H, W]; exactly one is drawn as a grid."""
    if len(images) != 1:
        what = "no image output" if not images else f"several image outputs {sorted(images)}"
        raise ApiError(
            406,
            "not_acceptable",
            f"Accept: image/png needs exactly one image output, this request has {what}; "
            "choose one image modality in targets",
            "Accept",
        )
    (x,) = images.values()
    return Response(png_grid(x, scale=scale), media_type=PNG)
