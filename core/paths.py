"""Where mmvae-service keeps its files: the data directory, the model store, the Hub cache.

Read from the environment at call time (not import time), so tests and services can redirect them.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """`MMVAE_DATA_DIR`, default `./data`: the root of everything the service writes."""
    return Path(os.environ.get("MMVAE_DATA_DIR") or "./data").expanduser()


def store_dir() -> Path:
    """The local model store: `MMVAE_STORE_DIR`, default `<data_dir>/models`."""
    override = os.environ.get("MMVAE_STORE_DIR")
    return Path(override).expanduser() if override else data_dir() / "models"


def hub_cache_dir() -> Path:
    """Hub download cache: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `<data_dir>/hub`.

    The Hugging Face variables win so a machine-wide cache (and `HF_HUB_OFFLINE=1` on it) is shared.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return data_dir() / "hub"
