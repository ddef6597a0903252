"""HTTP serving: requests/s and p50/p99 latency of `generate` on the digits-demo model at 1, 8, 32
and 128 concurrent clients, dynamic batching on and off, and two floors under the same load in
the same run: the app's trivial `/healthz` (uvicorn, the app's middleware and FastAPI's routing),
and a constant answer from a bare ASGI function in front of the app (uvicorn alone; batching on
only, as it does not depend on it). uvicorn runs in a subprocess on loopback; the load
generator (bench.httpload) runs in this process, so client and server share the 2 cores. Each
point is measured on both uvicorn stacks (bench.server.STACKS): httptools + uvloop, as installed
with this project, and the pure-Python h11 + asyncio.

    python -m bench.serving [--quick] [--duration 3] [--repeat 3] [--clients 1,8,32,128]
                            [--stacks auto,pure]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS_DIR, finish, machine, machine_line, median, table, write
from bench.httpload import Target, run_load
from bench.server import RAW_PATH, ROOT, STACKS, Server, serve, stack_description

GENERATE = {"inputs": {"label": [3]}, "targets": ["image"], "n_samples": 1}
PATH = "/v1/models/digits-demo/generate"
HEADERS = [
    "stack",
    "batching",
    "clients",
    "generate req/s",
    "p50 ms",
    "p99 ms",
    "/healthz req/s",
    "of floor",
    "uvicorn alone req/s",
    "of uvicorn",
    "server CPU cores",
    "server CPU ms/req",
    "client CPU cores",
    "errors",
]


def batch_stats(url: str) -> dict[str, float]:
    """Forward passes of generate and mean requests per pass, from the Prometheus metrics."""
    values: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("mmvae_batch_requests_") and 'op="generate"' in line:
            values[line.split("{")[0].rsplit("_", 1)[-1]] = float(line.rsplit(" ", 1)[-1])
    count, total = values.get("count", 0.0), values.get("sum", 0.0)
    mean = round(total / count, 2) if count else 0
    return {"forward_passes": count, "mean_requests_per_pass": mean}


def measure(server: Server, path: str, body: dict | None, clients: int, duration: float) -> dict:
    """One load point, with the server's CPU use (cores) over it."""
    target = Target("127.0.0.1", server.port, "GET" if body is None else "POST", path, body)
    cpu = server.cpu_seconds()
    row = run_load(target, clients, duration)
    used = server.cpu_seconds() - cpu
    row["server_cpu_cores"] = round(used / duration, 2)
    per = round(1000 * used / row["requests"], 3) if row["requests"] else None
    row["server_cpu_ms_per_request"] = per
    return row


def run_mode(
    batching: bool,
    clients: list[int],
    duration: float,
    env: dict[str, str],
    root: Path = ROOT,
    stack: str = "auto",
) -> dict:
    """Start a server with batching on or off and measure generate and /healthz at each load."""
    settings = {"MMVAE_BATCHING": str(batching).lower(), "MMVAE_PRELOAD": "digits-demo", **env}
    with (
        tempfile.TemporaryDirectory() as data_dir,
        serve(settings, data_dir, root, stack=stack) as server,
    ):
        measure(server, PATH, GENERATE, 4, min(duration, 0.5))  # warm up
        points = []
        for c in clients:
            gen = measure(server, PATH, GENERATE, c, duration)
            health = measure(server, "/healthz", None, c, duration)
            gen["healthz_rps"] = health["rps"]
            gen["fraction_of_floor"] = _fraction(gen, health)
            point = {"generate": gen, "healthz": health}
            if batching:  # the stack's floor does not depend on batching: measured once
                raw = point["uvicorn"] = measure(server, RAW_PATH, None, c, duration)
                gen["fraction_of_uvicorn"] = _fraction(gen, raw)
            points.append(point)
        return {"settings": settings, "points": points, "batching": batch_stats(server.url)}


def _fraction(part: dict, whole: dict) -> float:
    return round(part["rps"] / whole["rps"], 3) if whole["rps"] else 0


def run_stack(
    stack: str,
    clients: list[int],
    duration: float,
    modes: list[str],
    env: dict[str, str],
    root: Path,
) -> dict:
    result: dict[str, Any] = {
        "server": stack_description(stack),
        "modes": {m: run_mode(m == "on", clients, duration, env, root, stack) for m in modes},
    }
    modes_ = result["modes"]
    if "on" in modes_ and "off" in modes_:
        result["speedup_on_vs_off"] = {
            str(p["generate"]["clients"]): round(p["generate"]["rps"] / q["generate"]["rps"], 2)
            for p, q in zip(modes_["on"]["points"], modes_["off"]["points"], strict=True)
        }
    return result


def run(
    clients: list[int],
    duration: float,
    modes: list[str],
    env: dict[str, str],
    root: Path = ROOT,
    stacks: tuple[str, ...] = tuple(STACKS),
    repeat: int = 1,
) -> dict:
    """`repeat` rounds, each starting fresh servers for every stack and mode; every figure is
    the median over the rounds of what was measured within one round (ratios included)."""
    info = machine()  # before the rounds: the load average at the start
    rounds: dict[str, list[dict]] = {s: [] for s in stacks}
    for _ in range(repeat):
        for s in stacks:
            rounds[s].append(run_stack(s, clients, duration, modes, env, root))
    results: dict[str, Any] = {
        "machine": info,
        "duration_s": duration,
        "repeat": repeat,
        "request": GENERATE,
        "client": "bench.httpload (raw asyncio, keep-alive), same machine as the server",
        "server_root": str(root),
        "stacks": {s: median_of_rounds(r) for s, r in rounds.items()},
    }
    finish(results["machine"])
    return results


def median_of_rounds(rounds: list[dict]) -> dict:
    """One stack's rounds → the same structure with the median of every number, plus the
    per-round throughputs and ratios under `rounds`."""

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            return {k: merge([v[k] for v in values]) for k in first}
        if isinstance(first, list):
            return [merge(list(items)) for items in zip(*values, strict=True)]
        if isinstance(first, bool) or not isinstance(first, int | float):
            return first
        middle = median(values)
        whole = all(isinstance(v, int) for v in values) and middle == int(middle)
        return int(middle) if whole else round(middle, 3)

    merged = merge(rounds)
    merged["rounds"] = [
        {mode: [p["generate"]["rps"] for p in data["points"]] for mode, data in r["modes"].items()}
        | {"speedup_on_vs_off": r.get("speedup_on_vs_off")}
        for r in rounds
    ]
    return merged


def markdown(results: dict[str, Any]) -> str:
    rows, passes, speedups = [], [], []
    for stack in results["stacks"].values():
        for mode, data in stack["modes"].items():
            for p in data["points"]:
                g, h, raw = p["generate"], p["healthz"], p.get("uvicorn")
                rows.append(
                    [
                        stack["server"],
                        mode,
                        g["clients"],
                        g["rps"],
                        g["p50_ms"],
                        g["p99_ms"],
                        h["rps"],
                        f"{g['fraction_of_floor']:.0%}",
                        raw["rps"] if raw else "–",
                        f"{g['fraction_of_uvicorn']:.0%}" if raw else "–",
                        g["server_cpu_cores"],
                        g["server_cpu_ms_per_request"],
                        g["client_cpu_cores"],
                        g["errors"],
                    ]
                )
            passes.append(
                [
                    stack["server"],
                    mode,
                    data["batching"]["forward_passes"],
                    data["batching"]["mean_requests_per_pass"],
                ]
            )
        if "speedup_on_vs_off" in stack:
            speed = ", ".join(f"{c} clients {x}x" for c, x in stack["speedup_on_vs_off"].items())
            speedups.append(f"- {stack['server']}: {speed}.")
    out = [
        "# Serving: generate on digits-demo over HTTP",
        "",
        machine_line(results["machine"]),
        f"{results['duration_s']} s per point, median of {results['repeat']} rounds (each round "
        f"starts fresh servers; ratios are taken within a round); closed-loop clients on "
        f"loopback ({results['client']}).",
        "",
        table(HEADERS, rows),
        "",
        table(["stack", "batching", "forward passes", "mean requests per pass"], passes),
    ]
    if speedups:
        out += ["", "Batching on vs off (generate req/s):", *speedups]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per point")
    parser.add_argument("--duration", type=float, default=None, help="seconds per point")
    parser.add_argument("--clients", default="1,8,32,128", help="comma-separated client counts")
    parser.add_argument("--modes", default="on,off", help="batching modes: on,off")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3; 1 quick)")
    parser.add_argument("--stacks", default=",".join(STACKS), help="uvicorn stacks: auto,pure")
    parser.add_argument("--env", action="append", default=[], help="extra MMVAE_X=value setting")
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree to serve")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    duration = args.duration or (1.0 if args.quick else 3.0)
    clients = [int(c) for c in args.clients.split(",")]
    env = dict(e.split("=", 1) for e in args.env)
    stacks = tuple(args.stacks.split(","))
    for stack in stacks:
        if stack not in STACKS:
            parser.error(f"unknown stack {stack!r}; choose from {', '.join(STACKS)}")
    repeat = args.repeat or (1 if args.quick else 3)
    modes = args.modes.split(",")
    results = run(clients, duration, modes, env, args.root.resolve(), stacks, repeat)
    write("serving", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
