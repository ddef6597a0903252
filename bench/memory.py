"""Server memory: resident set size of the uvicorn process with one model loaded and with five
(one of each model type, the training benchmark's architecture), each warmed up by the server.

    python -m bench.memory [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS_DIR, finish, machine, machine_line, rss_mib, table, write
from bench.server import serve

MODELS = ("mopoe", "mvae", "jmvae", "mmvae", "mvtcae")


def fill_store(root: Path, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """Save one untrained model per kind into the model store at `root`."""
    from bench.training import LATENT_DIM, NETWORK, modality_specs
    from core.models import build_model
    from core.store import ModelStore

    store, saved = ModelStore(root), []
    for kind in kinds:
        config = {
            "model_type": kind,
            "latent_dim": LATENT_DIM,
            **NETWORK,
            "modalities": modality_specs("digits", 2),
        }
        model = build_model(config)
        store.save(model, f"bench-{kind}")
        saved.append(
            {"name": f"bench-{kind}", "parameters": sum(p.numel() for p in model.parameters())}
        )
    return saved


def settled_rss(pid: int, wait_s: float = 0.5) -> float:
    """RSS after a short pause (allocator caches settle)."""
    time.sleep(wait_s)
    return rss_mib(pid)


def run(kinds: tuple[str, ...] = MODELS) -> dict[str, Any]:
    info = machine()
    with tempfile.TemporaryDirectory() as data_dir:
        models = fill_store(Path(data_dir) / "models", kinds)
        env = {"MMVAE_PRELOAD": "", "MMVAE_BATCHING": "true"}
        with serve(env, data_dir) as server:
            points = [{"models_loaded": 0, "rss_mib": settled_rss(server.proc.pid)}]
            for i, m in enumerate(models, 1):
                body = {"source": {"kind": "store", "name": m["name"]}}
                r = httpx.post(f"{server.url}/v1/models", json=body, timeout=120)
                r.raise_for_status()
                gen = {"inputs": {"label": [3]}, "targets": ["image"]}
                httpx.post(
                    f"{server.url}/v1/models/{m['name']}/generate", json=gen
                ).raise_for_status()
                if i in (1, len(models)):
                    points.append({"models_loaded": i, "rss_mib": settled_rss(server.proc.pid)})
    return {"machine": finish(info), "models": models, "points": points}


def markdown(results: dict[str, Any]) -> str:
    base = results["points"][0]["rss_mib"]
    rows = [
        [p["models_loaded"], p["rss_mib"], round(p["rss_mib"] - base, 1)] for p in results["points"]
    ]
    names = ", ".join(f"{m['name']} ({m['parameters']:,} parameters)" for m in results["models"])
    return (
        "\n".join(
            [
                "# Server memory",
                "",
                machine_line(results["machine"]),
                "uvicorn + the app, models loaded through POST /v1/models and "
                f"warmed with one generate each, in order: {names}.",
                "",
                table(["models loaded", "server RSS MiB", "over no model"], rows),
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(same as the full run: ~10 s)")
    parser.add_argument("--models", default=",".join(MODELS), help="model types to load")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    results = run(tuple(m for m in args.models.split(",") if m))
    write("memory", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
