"""The multi-view-AE environment: a virtual environment with `multiviewae` 1.1.8 and the
pytorch-lightning 1.5.10 it pins, next to this project's CPU torch, made once and reused
(`bench/compare/.venv-multiview`; .gitignore must list it as it lists `.venv-reference`), for
multiview_reference.py.

torch==2.13.0 is installed first (on CPU machines pip takes it from the local wheel). Then
multiviewae and pytorch-lightning are installed with --no-deps and their dependencies by name,
with torch and setuptools held by a constraint file, because their declared requirements cannot
be met beside torch 2.13:
- pytorch-lightning 1.5.10 pins setuptools==59.5.0, torch 2.13.0 requires setuptools>=77.0.3
  (pip then falls back to torch 2.12.1 and downloads its CUDA build, GBs); it also imports
  `pkg_resources`, which setuptools 81+ no longer ship (84.0.0 has none), so setuptools stays
  in [77.0.3, 81);
- multiviewae requires torchvision, pytest and pytest-cov, none of which it or Lightning imports
  (a PyPI torchvision would be a CUDA build, as env.py explains).
pip stays below 24.1, which rejects pytorch-lightning 1.5.10's metadata (`torch>=1.7.*`); a new
venv's own pip (23.2 with Python 3.11.7) already is. multiview_reference.py patches Lightning
1.5.10 for Python 3.11 at run time (`lightning_python311`).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.compare.env import installed_versions, new_venv

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-multiview"
PIP = "pip<24.1"
# held for every install after the first (the constraint file)
PINNED = ["torch==2.13.0", "setuptools>=77.0.3,<81"]
PACKAGES = ["multiviewae==1.1.8", "pytorch-lightning==1.5.10"]  # installed with --no-deps
DEPENDENCIES = [
    # multiviewae's imports
    "hydra-core==1.3.8",
    "omegaconf==2.3.1",
    "schema==0.7.8",
    "numpy",
    # pytorch-lightning 1.5.10's (its loggers import torch.utils.tensorboard)
    "torchmetrics==1.9.0",
    "pyDeprecate==0.3.1",
    "tensorboard",
    "fsspec",
    "tqdm",
    "PyYAML",
    "packaging",
    "typing_extensions",
    # protocol.py's
    "scikit-learn",
]
READY = VENV / ".ready"


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(log: bool = True) -> Path:
    """The multi-view-AE environment's interpreter, creating the environment if needed."""
    if READY.is_file():
        return python()
    run, pip = new_venv(VENV, log)
    run(*pip, PIP)
    run(*pip, *PINNED)  # torch first: the local wheel
    constraints = VENV / "constraints.txt"
    constraints.write_text("\n".join(PINNED) + "\n")
    pinned = [*pip, "-c", str(constraints)]
    run(*pinned, "--no-deps", *PACKAGES)
    run(*pinned, *DEPENDENCIES)
    run(str(python()), "-c", "import multiviewae, pytorch_lightning, sklearn")
    READY.write_text(json.dumps(versions()) + "\n")
    return python()


def versions() -> dict[str, str]:
    """The packages' installed versions, for the results."""
    return installed_versions(python(), ("multiviewae", "pytorch-lightning", "torch"))
