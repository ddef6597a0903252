"""The project's import graph, read from the source (deferred imports included, imports under
`if TYPE_CHECKING:` left out, since they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "service", "workers", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of `packages`, by dotted name (not what hidden folders hold, such as the
    reference virtual environment bench.compare makes)."""
    return {
        module_name(path): path
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    }


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    return skipped


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports (a `from package import submodule` counts as the
    submodule), wherever the import statement sits."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found & known


def graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (not counting its own parent packages)."""
    found = modules(packages)
    known = set(found)
    return {
        name: {d for d in imports(path, known) if d != name and not name.startswith(d + ".")}
        for name, path in found.items()
    }


def collapse(edges: dict[str, set[str]], units: list[str]) -> dict[str, set[str]]:
    """The graph between `units` (packages or modules): each module belongs to the longest unit
    that is it or contains it."""

    def unit(name: str) -> str | None:
        owners = [u for u in units if name == u or name.startswith(u + ".")]
        return max(owners, key=len) if owners else None

    out: dict[str, set[str]] = {u: set() for u in units}
    for src, dsts in edges.items():
        a = unit(src)
        for dst in dsts:
            b = unit(dst)
            if a is not None and b is not None and a != b:
                out[a].add(b)
    return out


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One cycle as [a, b, ..., a], or [] when the graph is acyclic."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str]:
        state[v] = 1
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if state.get(w) == 1:
                return [*stack[stack.index(w) :], w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return []

    for v in sorted(edges):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return []
