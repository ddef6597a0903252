"""The per-family model scripts: together they cover every registered model type, and each runs
as documented (`python examples/models/<family>.py --epochs N`) and prints its results table."""

from __future__ import annotations

import importlib.util
import math
import re
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from core.models import build_model
from tests.core.models.cases import built_in_models
from tests.examples.conftest import EXAMPLES, MODEL_SCRIPTS, run_python

EPOCHS = 2
ROW = re.compile(r"^(\S+)\s+(n/a|\d\.\d{3})\s+(n/a|-?\d+\.\d{2})$")


def load_script(path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import a script as `python examples/models/x.py` would see it (its folder on sys.path)."""
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def family_models(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    return load_script(path, monkeypatch).models(EPOCHS)


def test_the_family_scripts_cover_every_model_type(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(MODEL_SCRIPTS) >= 7, [p.name for p in MODEL_SCRIPTS]
    assert len(built_in_models()) >= 24
    named: dict[str, list[str]] = {}
    for path in MODEL_SCRIPTS:
        for config in family_models(path, monkeypatch).values():
            named.setdefault(config["model_type"], []).append(path.name)
    shipped = built_in_models()
    assert set(named) == shipped, (
        f"missing from examples/models: {sorted(shipped - set(named))}; "
        f"not shipped: {sorted(set(named) - shipped)}"
    )


def test_every_family_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each config builds (a misspelled option is an error: configs forbid extra fields)."""
    for path in MODEL_SCRIPTS:
        for name, config in family_models(path, monkeypatch).items():
            assert build_model(config).model_type == config["model_type"], (path.name, name)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread while a script runs in this process (the tests share two cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("script", MODEL_SCRIPTS, ids=lambda p: p.stem)
def test_family_script_runs_and_prints_its_table(
    script: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    one_thread: None,
) -> None:
    """The script as `python <script> --epochs 2` runs it (as __main__, its folder on the
    path), in this process to spare an interpreter start per script."""
    models = family_models(script, monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", str(EPOCHS)])
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "image->label", "test", "NLL"], lines
    rows = {m.group(1): m.groups()[1:] for m in map(ROW.match, lines[1:]) if m}
    assert list(rows) == list(models), lines
    for name, (coherence, nll) in rows.items():
        model = build_model(models[name])
        generates_labels = model.generation_error(["image"], ["label"]) is None
        assert (coherence != "n/a") == generates_labels, (name, coherence)
        if coherence != "n/a":
            assert 0.0 <= float(coherence) <= 1.0, (name, coherence)
        assert (nll == "n/a") == model.deterministic, (name, nll)
        if nll != "n/a":
            assert math.isfinite(float(nll)), (name, nll)
    assert not list(tmp_path.iterdir()), "a family script wrote files"


def test_a_script_runs_from_the_command_line(tmp_path: Path) -> None:
    """`python examples/models/conditional.py --epochs 1 --only NAME`, in a fresh interpreter."""
    script = str(EXAMPLES / "models" / "conditional.py")
    out = run_python([script, "--epochs", "1", "--only", "cvae-label|image"], cwd=tmp_path)
    header, *rows = out.splitlines()
    assert header.split() == ["model", "image->label", "test", "NLL"], out
    assert len(rows) == 1 and ROW.match(rows[0]), out
    assert rows[0].split()[0] == "cvae-label|image", out


def test_only_names_unknown_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    script = EXAMPLES / "models" / "conditional.py"
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), "--only", "nope"])
    with pytest.raises(SystemExit, match=r"--only: unknown \['nope'\]; this script has \["):
        runpy.run_path(str(script), run_name="__main__")
