"""The reference environment: a virtual environment with MultiVae 1.0.3 and pythae 0.1.2 next to
this project's CPU torch, made once and reused (`bench/compare/.venv-reference`, ignored by git).

MultiVae's models import torchvision, whose PyPI build for torch 2.13 is linked to CUDA libraries
and does not import with the local CPU torch ("operator torchvision::nms does not exist"). So
multivae and pythae are installed with --no-deps, their pure-Python dependencies by name, and
`torchvision_shim/` stands in for torchvision (the names are imported, never used by a training
benchmark). `torch.distributions.Distribution.set_default_validate_args(False)` lets MultiVae's
Bernoulli decoder score grey pixels (reference.py sets it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-reference"
PACKAGES = ["multivae==1.0.3", "pythae==0.1.2"]
DEPENDENCIES = [
    "torch==2.13.0",  # the same wheel as the project's (the local CPU build on CPU machines)
    "numpy",
    "pydantic>=2",
    "scikit-learn",
    "scipy",
    "tqdm",
    "typing_extensions",
    "cloudpickle",
    "imageio",
    "matplotlib",
    "pillow",
    "pandas",
    "nltk",
    "torchmetrics",
]
READY = VENV / ".ready"


def python() -> Path:
    return VENV / "bin" / "python"


def new_venv(venv: Path, log: bool) -> tuple[Callable[..., Any], list[str]]:
    """A fresh virtual environment at `venv` (an earlier one removed): a command runner (output
    shown when `log`) and the environment's `pip install --quiet` command."""
    shutil.rmtree(venv, ignore_errors=True)

    def run(*cmd: str) -> Any:
        return subprocess.run(cmd, check=True, capture_output=not log)

    run(sys.executable, "-m", "venv", str(venv))
    return run, [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]


def ensure(log: bool = True) -> Path:
    """The reference environment's interpreter, creating the environment if needed."""
    if READY.is_file():
        return python()
    run, pip = new_venv(VENV, log)
    run(*pip, *DEPENDENCIES)
    run(*pip, "--no-deps", *PACKAGES)
    site = subprocess.run(
        [str(python()), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shutil.copytree(HERE / "torchvision_shim" / "torchvision", Path(site) / "torchvision")
    run(str(python()), "-c", "import multivae.models, multivae.trainers")
    READY.write_text(" ".join(PACKAGES) + "\n")
    return python()


def versions() -> dict[str, str]:
    """The reference packages' installed versions, for the results."""
    return installed_versions(python(), ("multivae", "pythae", "torch"))


def installed_versions(interpreter: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """`packages`' versions as installed for `interpreter` (an environment of bench.compare)."""
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(interpreter), "-c", code, *packages], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)
