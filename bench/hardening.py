"""Hostile requests, uploads and overload against two source trees (issue 15's before/after).

For each tree (`--before`, an older checkout, and this one), alternated round by round, a real
server on loopback is sent:

- the hostile requests of the issue, one at a time: their status, time and the server's extra
  peak RSS (the kernel's high-water mark, reset before each request via /proc/<pid>/clear_refs),
  and the latency of a cheap one-label request sent while the hostile one runs (isolation);
- raw-body dataset uploads of growing size: time to the answer;
- seeded generate requests (never merged) from 64, 300 and 512 closed-loop clients that resend
  at once whatever the answer, with the default queue of 256: answered requests per second.

    git worktree add /tmp/before <commit>
    python -m bench.hardening --before /tmp/before [--rounds 3] [--uploads 32,128,250]
        [--connections 64,300,512] [--duration 6]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS_DIR, finish, machine, machine_line, median, table, write
from bench.httpload import Target, run_load
from bench.server import ROOT, Server, serve

MODEL = "/v1/models/digits-demo"
CHEAP = {"inputs": {"label": [3]}, "targets": ["image"], "n_samples": 1}
SEEDED = {**CHEAP, "seed": 7}
ZERO_IMAGE = [[[0.0] * 8 for _ in range(8)]]
HOSTILE: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "generate 256 labels x 64 samples, png_scale 32": (
        "generate",
        {"inputs": {"label": list(range(10)) * 25 + [0] * 6}, "n_samples": 64,
         "targets": ["image"], "encoding": "png", "png_scale": 32},
        {},
    ),
    "generate 64 rows x 64 samples as image/png, png_scale 32": (
        "generate",
        {"inputs": {"label": [3] * 64}, "targets": ["image"], "n_samples": 64, "png_scale": 32},
        {"Accept": "image/png"},
    ),
    "log-likelihood k 5000, 256 rows, given label": (
        "log-likelihood",
        {"inputs": {"image": [ZERO_IMAGE] * 256, "label": [1] * 256}, "k": 5000,
         "given": ["label"]},
        {},
    ),
}  # fmt: skip
UPLOAD_MIB = (32, 128, 250)
CONNECTIONS = (64, 300, 512)
ENV = {
    "MMVAE_PRELOAD": "digits-demo",
    "MMVAE_QUEUE_SIZE": "256",  # the default (the bench server's own default is 1024)
    "MMVAE_REQUEST_TIMEOUT_S": "120",  # let the old tree finish what it accepts
    "MMVAE_MAX_DATASET_BYTES": str(300 * 2**20),
    "MMVAE_DATASETS_QUOTA_BYTES": str(2**40),
}


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def hostile(server: Server, op: str, body: dict, headers: dict[str, str]) -> dict[str, Any]:
    """One hostile request: status, seconds, extra peak RSS (MiB), and the median latency of
    cheap requests sent meanwhile (ms)."""
    pid = server.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    rss = _kib(pid, "VmRSS")
    cheap: list[float] = []
    done = threading.Event()

    def bystander() -> None:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            while not done.is_set():
                start = time.perf_counter()
                client.post(f"{MODEL}/generate", json=CHEAP)
                cheap.append(time.perf_counter() - start)
                time.sleep(0.05)

    thread = threading.Thread(target=bystander)
    start = time.perf_counter()
    thread.start()
    with httpx.Client(base_url=server.url, timeout=600) as client:
        status = client.post(f"{MODEL}/{op}", json=body, headers=headers).status_code
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    return {
        "status": status,
        "seconds": round(seconds, 3),
        "extra_peak_rss_mib": round((_kib(pid, "VmHWM") - rss) / 1024, 1),
        "cheap_request_ms": round(1000 * median(cheap), 1) if cheap else None,
    }


def upload(server: Server, mib: int) -> dict[str, Any]:
    """A raw-body upload of `mib` MiB (not a valid .npz: the answer is a 4xx after the whole
    body is received, so the time is the receiving)."""
    body = os.urandom(mib * 2**20)
    start = time.perf_counter()
    status = httpx.post(f"{server.url}/v1/datasets", content=body, timeout=600).status_code
    return {"status": status, "seconds": round(time.perf_counter() - start, 3)}


def overload(server: Server, clients: int, duration: float) -> dict[str, Any]:
    target = Target("127.0.0.1", server.port, "POST", f"{MODEL}/generate", SEEDED)
    row = run_load(target, clients, duration)
    return {"rps": row["rps"], "refused": row["errors"], "p50_ms": row["p50_ms"]}


def measure_tree(
    root: Path, duration: float, uploads: tuple[int, ...], connections: tuple[int, ...]
) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as data_dir, serve(ENV, data_dir, root) as server:
        run_load(Target("127.0.0.1", server.port, "POST", f"{MODEL}/generate", SEEDED), 4, 0.5)
        for name, (op, body, headers) in HOSTILE.items():
            figures[f"hostile: {name}"] = hostile(server, op, body, headers)
        for mib in uploads:
            figures[f"upload {mib} MiB raw body"] = upload(server, mib)
        for clients in connections:
            figures[f"seeded generate, {clients} connections"] = overload(server, clients, duration)
    return figures


def run(
    before: Path,
    rounds: int,
    duration: float,
    uploads: tuple[int, ...] = UPLOAD_MIB,
    connections: tuple[int, ...] = CONNECTIONS,
) -> dict[str, Any]:
    trees = {"before": before.resolve(), "after": ROOT}
    runs: dict[str, list[dict[str, dict[str, Any]]]] = {"before": [], "after": []}
    for r in range(rounds):
        for name in ["before", "after"] if r % 2 == 0 else ["after", "before"]:
            runs[name].append(measure_tree(trees[name], duration, uploads, connections))
            print(f"round {r + 1} {name}: done", flush=True)
    return {"trees": {k: str(v) for k, v in trees.items()}, "rounds": rounds, "runs": runs}


def _summary(values: list[dict[str, Any]]) -> str:
    """Median of each number over rounds; the status codes seen."""
    out = []
    for key in values[0]:
        got = [v[key] for v in values if v[key] is not None]
        if key in ("status",):
            out.append("status " + "/".join(str(s) for s in sorted(set(got))))
        elif got:
            out.append(f"{key} {median(got):g}")
    return ", ".join(out)


def markdown(results: dict[str, Any]) -> str:
    runs = results["runs"]
    rows = [
        [key, _summary([r[key] for r in runs["before"]]), _summary([r[key] for r in runs["after"]])]
        for key in runs["after"][0]
    ]
    return "\n".join(
        [
            "# Hardening before / after (issue 15)",
            "",
            machine_line(results["machine"]),
            f"before: `{results['trees']['before']}` · after: `{results['trees']['after']}` · "
            f"{results['rounds']} rounds, order flipped every round; medians over rounds. "
            "Settings: " + ", ".join(f"{k}={v}" for k, v in ENV.items()) + ".",
            "",
            table(["case", "before", "after"], rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the older source tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per load point")
    parser.add_argument("--uploads", default=",".join(map(str, UPLOAD_MIB)), help="MiB sizes")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    info = machine()
    uploads = tuple(int(x) for x in args.uploads.split(","))
    connections = tuple(int(x) for x in args.connections.split(","))
    figures = run(args.before, args.rounds, args.duration, uploads, connections)
    results = {"machine": finish(info), **figures}
    write("hardening", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
