"""Call a running `mmvae serve` from Python with httpx: describe the demo model, generate images
from labels and labels from images, encode, sample, score log-likelihoods, then train a model
with a job (API key), load it and query it. The same calls with curl: serve_and_call.md.

    MMVAE_API_KEYS=walkthrough-key-0123456789 mmvae serve --port 8000    # one terminal
    python examples/serve_and_call.py --url http://127.0.0.1:8000 --key walkthrough-key-0123456789
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import httpx

DONE = {"succeeded", "failed", "cancelled"}
# the model the training job builds: an MVAE with small MLP encoders (decoders: the default)
MODEL = {"model_type": "mvae", "latent_dim": 8, "encoder": {"kind": "mlp", "hidden": [64]}}


def parse_args() -> argparse.Namespace:
    """Where the server is, the key its job routes need, and the training job's budget."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("MMVAE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("MMVAE_API_KEY"), help="an API key")
    parser.add_argument("--model", default="digits-demo", help="a loaded model to query")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the training job")
    parser.add_argument("--png", type=Path, default=Path("digits.png"), help="the grid's file")
    return parser.parse_args()


def post(client: httpx.Client, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """POST JSON; an error answer raises with the server's message (it names the field)."""
    response = client.post(path, json=body, **kw)
    if response.is_error:
        raise SystemExit(f"{path}: {response.status_code} {response.text}")
    return response.json()


def inference(client: httpx.Client, model: str, png: Path) -> None:
    """The inference routes of one model: generate both ways, encode, sample, likelihood."""
    route = f"/v1/models/{model}"
    info = client.get(route).raise_for_status().json()
    print(model, info["model_type"], {m["name"]: m["shape"] for m in info["modalities"]})

    # label -> image: one image per digit, decoded from the posterior mean (deterministic)
    digits = list(range(10))
    body = {"inputs": {"label": digits}, "targets": ["image"], "mean_latent": True}
    out = post(client, f"{route}/generate", {**body, "encoding": "nested"})["outputs"]
    images = out["image"]["data"][0]  # [S, B, 1, 8, 8] -> the first draw: [10, 1, 8, 8]
    print("label -> image:", out["image"]["shape"])

    # image -> label: the generated images back into labels (nested lists of pixel values)
    body = {"inputs": {"image": images}, "targets": ["label"], "mean_latent": True}
    classes = post(client, f"{route}/generate", body)["outputs"]["label"]["classes"][0]
    agree = sum(c == d for c, d in zip(classes, digits, strict=True))
    print(f"image -> label: {classes} ({agree}/10 digits back)")

    # the same images as one PNG grid (4 draws per digit), written to a file
    body = {"inputs": {"label": digits}, "targets": ["image"], "n_samples": 4, "png_scale": 4}
    grid = client.post(f"{route}/generate", json=body, headers={"Accept": "image/png"})
    png.write_bytes(grid.raise_for_status().content)
    print(f"PNG grid: {png} ({len(grid.content)} bytes)")

    # encode: the posterior of every latent space, and 2 draws of the primary one
    body = {"inputs": {"image": images[:3]}, "n_samples": 2, "seed": 0}
    latent = post(client, f"{route}/encode", body)
    shapes = latent["mean"]["shape"], latent["samples"]["shape"]
    print(f"encode: space {latent['space']}, mean {shapes[0]}, draws {shapes[1]}")

    # unconditional samples from the prior, fixed by a seed
    out = post(client, f"{route}/sample", {"n": 4, "seed": 0})["outputs"]
    print("sample:", {m: x["shape"] for m, x in out.items()}, "labels", out["label"]["classes"])

    # log-likelihoods: joint log p(image, label) and conditional log p(image | label)
    inputs = {"image": images, "label": digits}
    joint = post(client, f"{route}/log-likelihood", {"inputs": inputs, "k": 100, "seed": 0})
    given = {"inputs": inputs, "given": ["label"], "k": 100, "seed": 0}
    conditional = post(client, f"{route}/log-likelihood", given)
    print(f"log p(image, label): {joint['log_likelihood'][0]:.2f}", end="; ")
    print(f"log p(image | label): {conditional['log_likelihood'][0]:.2f}")


def train_job(client: httpx.Client, key: str | None, epochs: int) -> str:
    """Submit a training job (job routes need an API key), wait for it, load its model."""
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    spec = {
        "type": "train",
        "model": MODEL,
        "dataset": "digits",
        "missing_ratio": 0.3,
        "trainer": {"epochs": epochs, "batch_size": 64},
        "name": "walkthrough-python",
    }
    job = post(client, "/v1/jobs", spec, headers=auth)
    print("job", job["id"], job["state"])
    deadline = time.monotonic() + 600
    while job["state"] not in DONE:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job['id']} still {job['state']} after 10 minutes")
        time.sleep(1)
        job = client.get(f"/v1/jobs/{job['id']}", headers=auth).raise_for_status().json()
        if job["progress"]:
            print("  epoch", job["progress"].get("epoch"), "of", job["progress"].get("epochs"))
    if job["state"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['state']}: {job['error']}")
    published = job["result"]["model"]  # the model store's name and version
    name, version = published["name"], published["version"]
    loss = job["result"]["final_metrics"]["eval_loss"]
    print(f"job succeeded: published {name}@{version}, eval loss {loss:.2f}")
    source = {"kind": "store", "name": name, "version": version}
    loaded = post(client, "/v1/models", {"source": source}, headers=auth)
    print("loaded", loaded["name"], "from the store")
    return loaded["name"]


def main() -> None:
    args = parse_args()
    with httpx.Client(base_url=args.url, timeout=120) as client:
        print("ready:", client.get("/readyz").raise_for_status().json()["ready"])
        inference(client, args.model, args.png)
        trained = train_job(client, args.key, args.epochs)
        body = {"inputs": {"label": [7]}, "targets": ["image"], "mean_latent": True}
        out = post(client, f"/v1/models/{trained}/generate", body)["outputs"]
        print(f"{trained}: label 7 -> image {out['image']['shape']}")


if __name__ == "__main__":
    main()
