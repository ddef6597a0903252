"""Model management: list, describe, load (store / Hub at a pinned sha / demo) and unload."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from core.models.config import ModalitySpec
from service import gc_tuning, loading
from service.deps import AdminKey, ModelDep, RegistryDep, SettingsDep
from service.registry import LoadedModel
from service.schemas import (
    LoadRequest,
    ModalityInfo,
    ModelInfo,
    ModelList,
    ModelSource,
    error_responses,
)
from service.security import KeyFirstRoute

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=KeyFirstRoute)
ERRORS = error_responses(401, 403, 404, 409, 413, 422, 502)

_ACCEPTS = {
    "image": ["png_base64", "nested_list", "tensor"],
    "categorical": ["class_index", "probabilities", "tensor"],
    "vector": ["nested_list", "tensor"],
}
_OUTPUTS = {
    "image": ["tensor", "nested", "png", "png_grid", "npz"],
    "categorical": ["tensor", "nested", "classes", "npz"],
    "vector": ["tensor", "nested", "npz"],
}


def modality_info(spec: ModalitySpec) -> ModalityInfo:
    kind = spec.kind or "vector"
    return ModalityInfo(
        name=spec.name,
        kind=kind,
        shape=list(spec.shape),
        likelihood=spec.likelihood.kind,
        accepts=_ACCEPTS[kind] + (["text"] if spec.vocabulary is not None else []),
        outputs=_OUTPUTS[kind] + (["text"] if spec.vocabulary is not None else []),
    )


def model_info(entry: LoadedModel) -> ModelInfo:
    config = entry.model.config
    return ModelInfo(
        name=entry.name,
        model_type=entry.model.model_type,
        latent_dim=config.latent_dim,
        latent_spaces=entry.model.describe_latent_spaces(),
        primary_space=entry.model.primary_space,
        modalities=[modality_info(m) for m in config.modalities],
        samplers=entry.samplers,
        generates=entry.model.generated,
        requires=entry.model.required_inputs,
        likelihood=entry.model.likelihood_error is None,
        kept_dimensions=entry.model.kept_dimensions(),
        parameters=entry.parameters,
        source=ModelSource.model_validate(
            {k: v for k, v in entry.source.items() if k in ModelSource.model_fields}
        ),
        loaded_at=entry.loaded_at,
        ready=entry.warmed,
        config=config.model_dump(mode="json"),
    )


@router.get("", response_model=ModelList, summary="the models being served")
async def list_models(registry: RegistryDep) -> ModelList:
    return ModelList(models=[model_info(e) for e in registry.list()])


@router.get(
    "/{name}", response_model=ModelInfo, responses=ERRORS, summary="one model: config, modalities"
)
async def get_model(entry: ModelDep) -> ModelInfo:
    return model_info(entry)


@router.post(
    "",
    response_model=ModelInfo,
    status_code=201,
    responses={200: {"model": ModelInfo, "description": "reloaded"}, **ERRORS},
    dependencies=[AdminKey],
    summary="load a model from the store or the Hub (pinned); a failed reload keeps the old one",
)
async def load_model(
    request: LoadRequest, registry: RegistryDep, settings: SettingsDep, response: Response
) -> ModelInfo:
    entry = await asyncio.to_thread(loading.load, request, settings)
    old = registry.put(entry)
    gc_tuning.settle()
    if old is not None:
        response.status_code = 200
    return model_info(entry)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=ERRORS,
    dependencies=[AdminKey],
    summary="stop serving a model (the store keeps it)",
)
async def unload_model(name: str, registry: RegistryDep, request: Request) -> Response:
    registry.remove(name)
    await request.app.state.batchers.remove(name)
    gc_tuning.settle()
    return Response(status_code=204)
