"""Training and serving speed (and Python calls per step) of two source trees, alternated.

Each round times the `before` tree and this one (the order flips every round, so drift in the
machine's load hits both alike), with `bench.training --root` and `bench.serving --root`; ratios
are taken within a round, then the median over rounds is reported.

    git worktree add /tmp/before <commit>
    python -m bench.before_after --before /tmp/before [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, finish, machine, machine_line, median, table, write

ROOT = Path(__file__).resolve().parent.parent
TRAINING = ["--datasets", "synthetic", "--m-values", "", "--steps", "20", "--repeats", "3"]
SERVING = ["--clients", "32", "--modes", "on", "--stacks", "auto", "--repeat", "1"]


def _run(part: str, tree: Path, extra: list[str], out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", f"bench.{part}", "--root", str(tree), "--out", str(out), *extra]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads((out / f"{part}.json").read_text())


def training_figures(result: dict[str, Any]) -> dict[str, float]:
    return {
        f"{r['model']} bs {r['batch_size']} samples/s": r["samples_per_s"]
        for r in result["runs"]
        if r["part"] == "models"
    }


def serving_figures(result: dict[str, Any]) -> dict[str, float]:
    out = {}
    for stack in result["stacks"].values():
        for point in stack["modes"]["on"]["points"]:
            n = point["generate"]["clients"]
            out[f"generate {n} clients req/s ({stack['server']})"] = point["generate"]["rps"]
            out[f"/healthz {n} clients req/s ({stack['server']})"] = point["healthz"]["rps"]
    return out


def calls_figures(result: dict[str, Any]) -> dict[str, float]:
    return {
        f"{r['model']} bs {r['batch_size']} Python calls/step": r["calls_per_step"]
        for r in result["runs"]
    }


PARTS = {
    "training": (TRAINING, training_figures),
    "serving": (SERVING, serving_figures),
    "calls": ([], calls_figures),
}


def run(
    before: Path, rounds: int, parts: list[str], options: dict[str, list[str]]
) -> dict[str, Any]:
    trees = {"before": before.resolve(), "after": ROOT}
    figures: dict[str, dict[str, dict[str, list[float]]]] = {
        p: {"before": {}, "after": {}} for p in parts
    }
    ratios: dict[str, dict[str, list[float]]] = {p: {} for p in parts}
    with tempfile.TemporaryDirectory(prefix="mmvae-before-after-") as tmp:
        for r in range(rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for part in parts:
                defaults, read = PARTS[part]
                extra = [*defaults, *options.get(part, [])]  # later options win
                got = {}
                for name in order:
                    out = Path(tmp) / f"{part}-{name}-{r}"
                    got[name] = read(_run(part, trees[name], extra, out))
                    for key, value in got[name].items():
                        figures[part][name].setdefault(key, []).append(value)
                    print(f"round {r + 1} {part} {name}: done", flush=True)
                for key in got["after"]:
                    ratio = got["after"][key] / got["before"][key]
                    ratios[part].setdefault(key, []).append(ratio)
    return {"trees": {k: str(v) for k, v in trees.items()}, "rounds": rounds, "figures": figures,
            "ratios": ratios}  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Before / after (alternated rounds)",
        "",
        machine_line(results["machine"]),
        f"before: `{results['trees']['before']}` · after: `{results['trees']['after']}` · "
        f"{results['rounds']} rounds, order flipped every round; ratio = after / before within a "
        "round, median over rounds.",
        "",
    ]
    for part, figs in results["figures"].items():
        rows = [
            [
                key,
                median(figs["before"][key]),
                median(figs["after"][key]),
                f"{median(results['ratios'][part][key]):.3f}",
                " ".join(f"{x:.3f}" for x in results["ratios"][part][key]),
            ]
            for key in figs["after"]
        ]
        lines += [
            f"## {part}",
            "",
            table(["figure", "before", "after", "ratio", "per round"], rows),
            "",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other source tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="training,serving,calls")
    parser.add_argument("--training-args", default="", help="more bench.training options")
    parser.add_argument("--serving-args", default="--duration 3", help="more bench.serving options")
    parser.add_argument("--calls-args", default="", help="more bench.calls options")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    info = machine()
    parts = [p for p in args.parts.split(",") if p]
    options = {
        "training": args.training_args.split(),
        "serving": args.serving_args.split(),
        "calls": args.calls_args.split(),
    }
    results = run(args.before, args.rounds, parts, options)
    results["machine"] = finish(info)
    write("before_after", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
