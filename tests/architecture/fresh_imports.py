"""Import every project module first, each in a fresh copy of the interpreter.

An import circle held together by import order breaks only when a particular module is imported
first. Starting one interpreter per module costs ~2 s each (torch), so this script imports the
third-party libraries once and forks a child per module: every child starts with no project
module loaded. Prints a JSON object {module: traceback} of the modules that failed.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

THIRD_PARTY = (
    "torch", "numpy", "scipy", "pydantic", "pydantic_settings", "safetensors", "yaml", "tqdm",
    "PIL", "huggingface_hub", "fastapi", "starlette", "uvicorn", "httpx", "prometheus_client",
    "celery", "kombu", "redis", "zuko", "matplotlib", "sklearn",
)  # fmt: skip


def main(names: list[str]) -> dict[str, str]:
    for lib in THIRD_PARTY:
        importlib.import_module(lib)
    project = {"core", "service", "workers"}
    assert not [m for m in sys.modules if m.split(".")[0] in project], "project already imported"
    failures = {}
    for name in names:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: import, report, exit without running the parent's cleanups
            os.close(read)
            status, report = 0, ""
            try:
                importlib.import_module(name)
            except BaseException:
                status, report = 1, traceback.format_exc()
            with open(write, "w") as pipe:
                pipe.write(report)
            os._exit(status)
        os.close(write)
        with open(read) as pipe:
            report = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failures[name] = report or f"exit status {status}"
    return failures


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    print(json.dumps(main(sys.argv[1:])))
