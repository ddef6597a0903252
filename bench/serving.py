"""Serving throughput: requests/s and p50/p99 latency of `generate` on the digits-demo model at
1, 8 and 32 concurrent clients, with dynamic batching on and off, plus the `/healthz` floor
(the HTTP stack alone) measured in the same run. uvicorn runs in a subprocess on loopback.

    python -m bench.serving [--duration 3] [--out bench/results]

Writes `serving.json` and `serving.md` into `--out`. Takes about 2 × (startup + 4 × duration) s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

SERVER = (
    "import sys, uvicorn; from service.app import create_app; "
    "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)
GENERATE = {"inputs": {"label": [3]}, "targets": ["image"], "n_samples": 1}
CONCURRENCY = (1, 8, 32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(batching: bool, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "MMVAE_BATCHING": "true" if batching else "false",
        "MMVAE_PRELOAD": "digits-demo",
        "MMVAE_DATA_DIR": data_dir,
        "MMVAE_LOG_LEVEL": "WARNING",
        "MMVAE_QUEUE_SIZE": "1024",
    }
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("the server exited during startup")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not become ready in 120 s")


async def load(url: str, path: str, body: dict | None, clients: int, duration: float) -> dict:
    """`clients` closed-loop callers for `duration` seconds; latency percentiles in ms."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                if body is None:
                    r = await client.get(path)
                else:
                    r = await client.post(path, json=body)
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pick(0.50), 2) if latencies else None,
        "p99_ms": round(pick(0.99), 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
    }


def batch_stats(url: str) -> dict[str, float]:
    """Mean requests per forward pass for generate, from the server's Prometheus metrics."""
    text = httpx.get(f"{url}/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith("mmvae_batch_requests_") and 'op="generate"' in line:
            name = line.split("{")[0].rsplit("_", 1)[-1]
            values[name] = float(line.rsplit(" ", 1)[-1])
    count, total = values.get("count", 0.0), values.get("sum", 0.0)
    return {
        "forward_passes": count,
        "mean_requests_per_pass": round(total / count, 2) if count else 0,
    }


def run(duration: float) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "duration_s": duration,
        "request": GENERATE,
        "modes": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as data_dir:
        for batching in (True, False):
            proc, url = start_server(batching, data_dir)
            try:
                asyncio.run(load(url, "/v1/models/digits-demo/generate", GENERATE, 4, 0.5))
                mode: dict[str, Any] = {
                    "healthz": asyncio.run(load(url, "/healthz", None, 8, duration)),
                    "generate": [
                        asyncio.run(
                            load(url, "/v1/models/digits-demo/generate", GENERATE, c, duration)
                        )
                        for c in CONCURRENCY
                    ],
                    "batching": batch_stats(url),
                }
            finally:
                proc.terminate()
                proc.wait(10)
            results["modes"]["on" if batching else "off"] = mode
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark: generate on digits-demo",
        "",
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}, "
        f"{results['duration_s']} s per point, closed-loop clients on loopback.",
        "",
        "| batching | clients | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for mode, data in results["modes"].items():
        for row in data["generate"]:
            lines.append(
                f"| {mode} | {row['clients']} | {row['rps']} | {row['p50_ms']} | "
                f"{row['p99_ms']} | {row['errors']} |"
            )
    lines += ["", "| batching | /healthz req/s (8 clients) | mean requests per forward pass |",
              "|---|---|---|"]  # fmt: skip
    for mode, data in results["modes"].items():
        lines.append(
            f"| {mode} | {data['healthz']['rps']} | {data['batching']['mean_requests_per_pass']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="output folder")
    args = parser.parse_args(argv)
    results = run(args.duration)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "serving.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
