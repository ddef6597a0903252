"""Dependency-injected handles (`Annotated` aliases) for the routes: settings, registry,
metrics, the model named in the path, and the API-key checks.

The getters are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread,
and those hops cost more than everything else these getters do (see bench/RESULTS.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from service.metrics import ServiceMetrics
from service.registry import LoadedModel, ModelRegistry
from service.security import admin_key, inference_key
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_model(
    request: Request,
    name: Annotated[str, Path(max_length=96, description="serving name of a loaded model")],
) -> LoadedModel:
    return request.app.state.registry.get(name)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
AdminKey = Depends(admin_key)
InferenceKey = Depends(inference_key)
