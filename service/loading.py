"""Where models come from: the bundled demo, the local store, or the Hub at a pinned commit.

Hub loads are checked before any network access (repo id rules, organisation allow-list, pinned
sha unless allowed) and go through the store (`ModelStore.import_from_hub`), so a pulled model
survives restarts. No source takes a filesystem path or a URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from core.data.batch import Batch
from core.models.base import MultimodalVAE
from service.errors import ApiError, invalid
from service.registry import LoadedModel
from service.schemas import DemoSpec, HubSpec, LoadRequest, StoreSpec
from service.settings import Settings


def parse_preload(spec: str) -> LoadRequest:
    """`digits-demo`, `name` or `store:name[@version]`, `hub:org/name@sha`; `alias=spec` serves
    it under `alias`."""
    alias = None
    if "=" in spec:
        alias, spec = (s.strip() for s in spec.split("=", 1))
    kind, _, rest = spec.partition(":") if ":" in spec else ("", "", spec)
    target, _, version = rest.partition("@")
    if kind == "" and rest == "digits-demo":
        return LoadRequest(name=alias, source=DemoSpec())
    if kind in ("", "store"):
        return LoadRequest(name=alias, source=StoreSpec(name=target, version=version or "latest"))
    if kind == "hub":
        return LoadRequest(name=alias, source=HubSpec(repo_id=target, revision=version or None))
    raise ValueError(f"MMVAE_PRELOAD: {spec!r} is not demo, store:name[@version] or hub:repo@sha")


def serving_name(request: LoadRequest) -> str:
    from core.hub import validate_store_name
    from service.demo import DEMO_NAME

    source = request.source
    if request.name is not None:
        name = request.name
    elif isinstance(source, DemoSpec):
        name = DEMO_NAME
    elif isinstance(source, StoreSpec):
        name = source.name
    else:
        name = source.repo_id.split("/")[-1]
    try:
        return validate_store_name(name)
    except ValueError as err:
        raise invalid("name", str(err)) from None


def check_hub(spec: HubSpec, settings: Settings) -> None:
    """Refuse a malformed repo id, an organisation off the allow-list, or an unpinned revision."""
    from core.hub import is_commit_sha, validate_repo_id, validate_revision

    try:
        validate_repo_id(spec.repo_id)
    except ValueError as err:
        raise invalid("source.repo_id", str(err)) from None
    try:
        validate_revision(spec.revision)
    except ValueError as err:
        raise invalid("source.revision", str(err)) from None
    allow = settings.hub_org_allowlist
    if allow:
        org = spec.repo_id.split("/")[0] if "/" in spec.repo_id else ""
        if org not in allow:
            raise ApiError(
                403,
                "org_not_allowed",
                f"source.repo_id: organisation {org or '(none)'!r} is not in the allow-list "
                "(setting MMVAE_HUB_ORG_ALLOWLIST)",
                "source.repo_id",
            )
    if not is_commit_sha(spec.revision) and not settings.allow_unpinned_hub:
        raise invalid(
            "source.revision",
            "Hub loads must be pinned to a 40-hex commit sha (a branch or tag can move); "
            "set MMVAE_ALLOW_UNPINNED_HUB=true to allow them",
        )


def _hub_cache(settings: Settings) -> Path | None:
    """`<data_dir>/hub`, unless the Hugging Face cache variables name a shared cache."""
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME"):
        return None
    return settings.data_dir / "hub"


def load(request: LoadRequest, settings: Settings) -> LoadedModel:
    """Load (and warm up) the model `request` names; blocking, so call it off the event loop."""
    from core.hub import HubError, HubNotFoundError, UnsafeModelError
    from core.store import ModelNotFoundError, ModelStore

    name = serving_name(request)
    source = request.source
    info: dict[str, Any]
    try:
        if isinstance(source, DemoSpec):
            from core.models.pretrained import load_folder
            from service.demo import demo_dir

            model = load_folder(demo_dir(settings.data_dir))
            info = {"kind": "demo", "name": name}
        elif isinstance(source, StoreSpec):
            store = ModelStore(settings.resolved_store_dir)
            version = store.get(source.name, source.version).name
            model = store.load(source.name, version)
            info = {"kind": "store", "name": source.name, "version": version}
            info.update(getattr(model, "source", None) or {})
            info["kind"] = "store"
        else:
            check_hub(source, settings)
            store = ModelStore(settings.resolved_store_dir)
            stored = store.import_from_hub(
                source.repo_id,
                source.revision,
                name=name,
                endpoint=settings.hub_endpoint,
                cache_dir=_hub_cache(settings),
            )
            model = store.load(stored.name, stored.version)
            info = {"kind": "hub", "name": stored.name, "version": stored.version}
            info.update(getattr(model, "source", None) or stored.source or {})
            info["kind"] = "hub"
    except (ModelNotFoundError, HubNotFoundError) as err:
        raise ApiError(404, "not_found", str(err), "source") from None
    except UnsafeModelError as err:
        raise ApiError(422, "unsafe_model", str(err), "source") from None
    except HubError as err:
        raise ApiError(502, "hub_error", str(err), "source") from None
    except ValueError as err:
        raise ApiError(422, "invalid_model", str(err), "source") from None
    model.eval()
    entry = LoadedModel(name=name, model=model, source=info)
    if settings.warmup:
        warm_up(model)
        entry.warmed = True
    return entry


@torch.no_grad()
def warm_up(model: MultimodalVAE) -> None:
    """One inference through every encoder and decoder (and the sampler), so the first caller
    does not pay for lazy initialisation, and a broken model fails before it serves."""
    data = {m.name: torch.zeros(1, *m.shape) for m in model.config.modalities}
    masks = {m: torch.ones(1, dtype=torch.bool) for m in data}
    model.generate(Batch(data, masks), n_samples=1)
    if model.sampling_error(model.sampler) is None:  # e.g. a conditional model has none
        model.sample(1, sampler=model.sampler)
