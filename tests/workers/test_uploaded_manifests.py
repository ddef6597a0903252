"""Manifest CSVs uploaded over HTTP: their cells name files under the operator's
MMVAE_MANIFEST_ROOT (never outside it), they are stored by content hash like an .npz, and jobs
train on them read row by row, with the manifest's own splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.builtin import load_builtin
from service.job_schemas import DatasetSummary
from tests.workers.conftest import AUTH, TINY_MODEL, submit, wait_job
from workers import datasets

CSV = {**AUTH, "Content-Type": "text/csv"}


def digits_files(root: Path, n: int = 200) -> bytes:
    """`n` digits as 8x8 PNGs and one-hot .npy files under `root`; the manifest naming them
    (the last quarter as the test split)."""
    digits = load_builtin("digits", "all")
    (root / "png").mkdir(parents=True)
    (root / "hot").mkdir()
    lines = ["image,onehot,label,split"]
    for i in range(n):
        pixels = (digits.data["image"][i, 0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(root / "png" / f"{i}.png")
        np.save(root / "hot" / f"{i}.npy", digits.data["label"][i].numpy())
        split = "test" if i >= 3 * n // 4 else "train"
        lines.append(f"png/{i}.png,hot/{i}.npy,{int(digits.labels[i])},{split}")
    return ("\n".join(lines) + "\n").encode()


def test_manifests_name_files_under_the_root_only(make_env, tmp_path: Path) -> None:
    root = tmp_path / "shared-data"
    manifest = digits_files(root)
    with make_env().client() as client:  # no root set: manifests are refused, clearly
        r = client.post("/v1/datasets", content=manifest, headers=CSV)
        assert r.status_code == 422 and "MMVAE_MANIFEST_ROOT" in r.json()["error"]["message"]
    env = make_env(MMVAE_MANIFEST_ROOT=str(root))
    with env.client() as client:
        r = client.post("/v1/datasets", content=manifest, headers=CSV)
        assert r.status_code == 201, r.text
        info = DatasetSummary.model_validate(r.json())
        assert info.n == 200 and info.splits == ["test", "train"] and info.has_labels
        shapes = {m["name"]: m["shape"] for m in info.modalities}
        assert shapes == {"image": [1, 8, 8], "onehot": [10]}
        files = {"file": ("mine.csv", manifest, "application/octet-stream")}
        r = client.post("/v1/datasets", files=files, headers=AUTH)
        assert r.status_code == 200 and r.json()["id"] == info.id  # a *.csv file: a manifest
        escape = b"image,label\n../outside.png,1\n"
        (tmp_path / "outside.png").write_bytes((root / "png" / "0.png").read_bytes())
        r = client.post("/v1/datasets", content=escape, headers=CSV)
        assert r.status_code == 422 and "line 2, image" in r.json()["error"]["message"]
        missing = b"image,label\npng/none.png,1\n"
        r = client.post("/v1/datasets", content=missing, headers=CSV)
        assert r.status_code == 422 and "png/none.png does not exist" in r.text
    settings = env.job_settings()
    train = datasets.load(settings, info.reference, "train")
    test = datasets.load(settings, info.reference, "test", in_memory=True)
    assert (len(train), len(test)) == (150, 50)
    digits = load_builtin("digits", "all")
    assert np.allclose(
        test.data["image"].numpy(), digits.data["image"][150:200].numpy(), atol=1 / 255
    )
    assert (test.labels == digits.labels[150:200]).all()
    stored = sorted(p.suffix for p in (env.data / "datasets").iterdir())
    assert stored == [".csv", ".json"]


@pytest.mark.slow
def test_a_job_trains_on_an_uploaded_manifest(make_env, tmp_path: Path) -> None:
    root = tmp_path / "shared-data"
    manifest = digits_files(root)
    env = make_env(MMVAE_MANIFEST_ROOT=str(root))
    env.start_worker()
    with env.client() as client:
        reference = client.post("/v1/datasets", content=manifest, headers=CSV).json()["reference"]
        trainer = {"epochs": 2, "batch_size": 50, "device": "cpu"}
        spec = {"type": "train", "name": "from-manifest", "model": TINY_MODEL,
                "dataset": reference, "trainer": trainer}  # fmt: skip
        done = wait_job(client, submit(client, spec)["id"], env=env)
        assert done["state"] == "succeeded", done
        metrics = done["result"]["final_metrics"]
        assert metrics["eval_loss"] > 0 and metrics["train_loss"] > 0  # the manifest's test split
