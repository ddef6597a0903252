"""The wheels a GPU machine of the device tool lacks for bench/gpu/run.sh, downloaded here.

Those machines hold Python 3.12 with a CUDA torch, numpy, safetensors, huggingface_hub, PyYAML,
tqdm and more, and reach no package index. What the project's core imports beyond those travels
as wheels in `.whl/` (ignored by git), at the versions this environment runs:

    python -m bench.gpu.wheels [--dest .whl]      (make gpu-wheels)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

# core's imports missing there (pydantic and its parts, zuko), and the typing_extensions
# this pydantic needs, newer than theirs
PACKAGES = ("pydantic", "pydantic_core", "annotated-types", "typing-inspection",
            "typing_extensions", "zuko")  # fmt: skip
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pins() -> list[str]:
    """Each package at the version installed here."""
    return [f"{p}=={importlib.metadata.version(p)}" for p in PACKAGES]


def download_command(dest: Path) -> list[str]:
    """pip's command that fetches the pinned wheels for the GPU machines' Python into `dest`."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
            *platforms, "--dest", str(dest), *pins()]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".whl"))
    args = parser.parse_args(argv)
    subprocess.run(download_command(args.dest), check=True)
    print("\n".join(sorted(p.name for p in args.dest.glob("*.whl"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
