"""The getting-started notebook: stored without outputs, and executed headless end to end with a
tiny budget, its Hub push going to a real Hub-compatible upload server on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
import safetensors.torch
import torch
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests.examples.conftest import EXAMPLES, example_env
from tests.examples.hub_upload_server import upload_hub

NOTEBOOK = EXAMPLES / "getting_started.ipynb"
REPO_ID = "examples/digits-mopoe"
TOKEN = "hf_examples_test_token"
MODEL_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    "sampler/config.json",
    "sampler/sampler.safetensors",
}


def this_interpreters_kernel() -> KernelManager:
    """A `python3` kernel run by this interpreter, whatever kernelspecs the machine has: with
    no kernel folders to search, jupyter_client falls back to ipykernel's built-in spec, which
    launches `sys.executable -m ipykernel_launcher` (so a fresh clone needs only `make install`)."""
    specs = KernelSpecManager(kernel_dirs=[])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell in order in a fresh kernel started in `cwd`; a failing cell raises."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        km=this_interpreters_kernel(),
        timeout=300,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return notebook


def stream_text(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 8
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.slow
def test_getting_started_runs_headless_and_pushes_to_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with upload_hub() as hub:
        env = example_env(
            MMVAE_EXAMPLES_EPOCHS="2",
            MMVAE_EXAMPLES_REPO_ID=REPO_ID,
            HF_ENDPOINT=hub.endpoint,
            HF_TOKEN=TOKEN,
            HF_HOME=str(tmp_path / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
        )
        for key in set(os.environ) - set(env):  # the kernel inherits this environment
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        notebook = execute(NOTEBOOK, tmp_path)
    text = stream_text(notebook)

    assert "2 epochs, test loss" in text
    assert "labels from images: [1, 360, 10]" in text
    assert "images from labels: [4, 10, 1, 8, 8]" in text
    assert "joint NLL:" in text and "coherence image -> label:" in text
    assert "reloaded: mopoe with a GaussianMixtureSampler" in text
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 2  # the generated and the sampled digits, as grids

    # the push: one commit of the saved folder, with the caller's token, nothing else called
    assert hub.unexpected() == []
    (commit,) = hub.commits
    assert commit.repo_id == REPO_ID and commit.revision == "main"
    assert commit.authorization == f"Bearer {TOKEN}"
    assert f"pushed {REPO_ID}@main: commit {commit.sha}" in text
    assert set(commit.files) == MODEL_FILES
    folder = tmp_path / "runs" / "getting-started" / "digits-mopoe"
    assert json.loads(commit.files["config.json"])["model_type"] == "mopoe"
    assert commit.files["config.json"] == (folder / "config.json").read_bytes()
    sent = safetensors.torch.load(commit.files["model.safetensors"])
    saved = safetensors.torch.load_file(folder / "model.safetensors")
    assert sent.keys() == saved.keys() and all(torch.equal(sent[k], saved[k]) for k in sent)
