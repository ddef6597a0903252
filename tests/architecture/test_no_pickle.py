"""No code path of the product unpickles: no pickle-family import, no `torch.load`, no
`allow_pickle=True` (user networks load from registered code and safetensors weights)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.imports import modules

UNPICKLERS = {"pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "_pickle"}
LOADING_CALLS = {"torch.load", "read_pickle", "torch.serialization.load"}


def unpickling(path: Path) -> list[str]:
    """What in `path` could unpickle: imports of UNPICKLERS, LOADING_CALLS, allow_pickle=True."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"import {n}" for n in names if n and n.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in LOADING_CALLS or called.endswith(".read_pickle"):
                found.append(called)
            found += [
                "allow_pickle=True"
                for k in node.keywords
                if k.arg == "allow_pickle"
                and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            ]
    return found


def test_no_product_module_can_unpickle() -> None:
    offenders = {
        name: found
        for name, path in modules(("core", "service", "workers")).items()
        if (found := unpickling(path))
    }
    assert offenders == {}


def test_the_scan_sees_each_way_to_unpickle(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text(
        "import pickle\nfrom joblib import load\nimport torch, numpy as np\n"
        "torch.load('x')\nnp.load('x', allow_pickle=True)\nnp.load('y', allow_pickle=flag)\n"
        "np.load('z', allow_pickle=False)\n"
    )
    assert unpickling(source) == [
        "import pickle",
        "import joblib",
        "torch.load",
        "allow_pickle=True",
        "allow_pickle=True",
    ]
