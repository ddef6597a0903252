"""Every ```python block of README.md runs as written: each in a fresh interpreter (its own
namespace), in order, in one temporary working directory (a later block may load what an
earlier one saved, as a reader following the README would), and none is a fragment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.data import load_npz
from tests.deploy.conftest import find_tool
from tests.examples.conftest import ROOT, fenced_blocks, run_python

README = (ROOT / "README.md").read_text()
BLOCKS = fenced_blocks(README, "python")


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_block_is_complete(index: int) -> None:
    """No undefined name, unused import or syntax error: a block runs on its own (ruff F)."""
    ruff = find_tool("ruff")
    assert ruff, "ruff (a dev dependency) is not installed"
    done = subprocess.run(
        [ruff, "check", "--isolated", "--select", "F,E9", "--stdin-filename", "block.py", "-"],
        input=BLOCKS[index],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"README python block {index + 1}:\n{done.stdout}"


@pytest.mark.slow
def test_every_block_runs_in_order(tmp_path: Path) -> None:
    for index, block in enumerate(BLOCKS):
        path = tmp_path / f"readme_block_{index + 1}.py"
        path.write_text(block)
        run_python([path.name], cwd=tmp_path, timeout=300)

    # what the blocks say they leave behind: the quickstart's model with the fitted sampler,
    # the evaluation's figures, the synthetic and the completed datasets
    model = tmp_path / "runs" / "mopoe" / "model"
    assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()
    assert (model / "sampler" / "config.json").is_file()
    assert any((tmp_path / "eval").rglob("*.png"))
    synth, filled = load_npz(tmp_path / "synth.npz"), load_npz(tmp_path / "filled.npz")
    assert len(synth) == 1000 and len(filled) == 360
    for dataset in (synth, filled):
        assert all(bool(mask.all()) for mask in dataset.masks.values())
    assert np.isfinite(synth.data["image"].numpy()).all()
