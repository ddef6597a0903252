"""The package import graph: no circles, core's layers in one direction, every module importable
on its own; and no code outside core/models names a concrete model or posterior class."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from core.models import MODEL_REGISTRY
from core.models.distributions import Posterior
from tests.architecture.imports import ROOT, collapse, find_cycle, graph, modules


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert find_cycle(graph()) == []


def test_core_layers_depend_in_one_direction() -> None:
    """Format, transport and samplers know nothing of model classes; models know nothing of
    training, metrics, the store or the CLI."""
    units = sorted({name for name in modules(("core",)) if name.count(".") == 1})
    layers = collapse(graph(("core",)), units)
    assert find_cycle(layers) == []
    for low in ("core.persistence", "core.hub", "core.samplers", "core.data", "core.nn"):
        assert "core.models" not in layers[low], low
    assert layers["core.models"] <= {
        "core.data", "core.nn", "core.persistence", "core.hub", "core.samplers"
    }  # fmt: skip


def test_the_finder_sees_circles_and_deferred_imports(tmp_path) -> None:
    """The graph reader is not vacuous: an import inside a function counts, one under
    TYPE_CHECKING does not."""
    from tests.architecture.imports import imports

    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import core.store\n"
        "def f():\n    from core.models import base\n"
    )
    found = imports(tmp_path / "a.py", {"core.models", "core.models.base", "core.store"})
    assert found == {"core.models", "core.models.base"}
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]


# Code that runs only in bench.compare's reference environments (MultiVae and its torchvision
# stand-in; multi-view-AE).
ELSEWHERE = (
    "bench.compare.reference",
    "bench.compare.torchvision_shim",
    "bench.compare.multiview_reference",
)


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    names = sorted(
        n
        for n in modules()
        if not n.endswith(".__main__")  # entry points run when imported
        and not n.startswith(ELSEWHERE)
    )
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "architecture" / "fresh_imports.py"), *names],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    failures = json.loads(run.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n\n".join(f"{m}:\n{tb}" for m, tb in failures.items())
    assert len(names) > 100


def _names_used(tree: ast.AST) -> set[str]:
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            used |= {alias.name.split(".")[-1] for alias in node.names}
    return used


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_no_code_outside_core_models_names_a_concrete_model_or_posterior_class() -> None:
    concrete = {c.__name__ for c in _subclasses(Posterior) if c.__module__.startswith("core.")}
    concrete |= {c.__name__ for c in MODEL_REGISTRY.values() if c.__module__.startswith("core.")}
    assert {"Diagonal", "Mixture", "FlowPosterior", "MVAE", "MoPoE"} <= concrete
    offenders = {}
    for name, path in modules(("core", "service", "workers", "bench")).items():
        if name.startswith(("core.models", *ELSEWHERE)):  # MultiVae's classes are its own
            continue
        hits = _names_used(ast.parse(path.read_text())) & concrete
        if hits:
            offenders[name] = sorted(hits)
    assert offenders == {}
