"""Experiment trackers written by the real libraries into a local folder and read back with
their own readers: TensorBoard event files, an MLflow store, a W&B offline run."""

from __future__ import annotations

import glob
import json
import struct
import sys
import time
from pathlib import Path

import pytest
import torch

from core.data import load_builtin
from core.models import build_model
from core.training import Trainer

MLP = {"kind": "mlp", "hidden": [16]}


def train(tmp_path: Path, trackers: list[dict], epochs: int = 2, **extra: object):
    torch.manual_seed(0)
    data = load_builtin("digits", "train").subset(slice(0, 200))
    test = load_builtin("digits", "test").subset(slice(0, 50))
    model = build_model({"model_type": "mvae", "latent_dim": 2, "encoder": MLP, "decoder": MLP,
                         "modalities": [{"name": "image", "shape": [1, 8, 8]},
                                        {"name": "label", "shape": [10],
                                         "likelihood": {"kind": "categorical"}}]})  # fmt: skip
    config = {"epochs": epochs, "batch_size": 50, "device": "cpu", "log_every_steps": 2,
              "output_dir": str(tmp_path / "run"), "trackers": trackers, **extra}  # fmt: skip
    result = Trainer(model, data, test, config).fit()
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return result, logged


def test_tensorboard_event_files_hold_the_run(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, logged = train(tmp_path, [{"kind": "tensorboard"}])
    [link] = result.trackers
    assert link == {"kind": "tensorboard", "log_dir": str(tmp_path / "run" / "tensorboard")}
    events = EventAccumulator(link["log_dir"])
    events.Reload()
    train_loss = events.Scalars("train/loss")
    assert [e.step for e in train_loss] == [4, 8]  # epoch ends, at their global step
    assert [e.value for e in train_loss] == pytest.approx([r["train_loss"] for r in logged])
    assert [e.value for e in events.Scalars("eval/loss")] == pytest.approx(
        [r["eval_loss"] for r in logged]
    )
    assert len(events.Scalars("step/loss")) == 4  # every log_every_steps = 2 steps
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(config.strip("`\n"))["trainer"]["epochs"] == 2


def test_an_mlflow_store_holds_params_metrics_and_status(tmp_path: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local store, no server
    uri = f"file://{tmp_path / 'mlruns'}"
    result, logged = train(tmp_path, [{"kind": "mlflow", "tracking_uri": uri, "run_name": "r1"}])
    [link] = result.trackers
    client = MlflowClient(uri)
    run = client.get_run(link["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "r1"
    assert run.data.params["trainer.epochs"] == "2"
    assert run.data.params["model.model_type"] == "mvae"
    history = client.get_metric_history(link["run_id"], "train_loss")
    assert [m.value for m in history] == pytest.approx([r["train_loss"] for r in logged])
    assert [m.step for m in history] == [4, 8]


def wandb_records(run_file: Path) -> list:
    """The protobuf records of a W&B run file (its LevelDB-style log: 32 KiB blocks of records
    with 7-byte headers, long ones split as FIRST, MIDDLE..., LAST)."""
    from wandb.proto import wandb_internal_pb2

    raw, block = run_file.read_bytes(), 32768
    assert raw[:4] == b":W&B"
    pos, records, pending = 7, [], b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + data)
            records.append(record)
            pending = b""
        elif kind in (2, 3):
            pending += data
    return records


def test_a_wandb_offline_run_holds_the_history(tmp_path: Path) -> None:
    result, logged = train(tmp_path, [{"kind": "wandb", "project": "tests"}])
    [link] = result.trackers
    assert link["mode"] == "offline" and link["dir"].startswith(str(tmp_path / "run" / "wandb"))
    [run_file] = glob.glob(f"{link['dir']}/run-{link['run_id']}.wandb")
    deadline = time.monotonic() + 30  # wandb's service process writes the file: give it time
    while True:
        history = [
            {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in wandb_records(Path(run_file))
            if r.WhichOneof("record_type") == "history"
        ]
        epochs = [h for h in history if "train/loss" in h]
        if len(epochs) == len(logged) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [h["train/loss"] for h in epochs] == pytest.approx([r["train_loss"] for r in logged]), (
        f"history rows in the run file: {history}"
    )
    assert [h["_step"] for h in epochs] == [4, 8]


def test_a_tracker_whose_library_is_missing_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ValueError, match=r"install it with pip install 'mmvae-service\[wandb\]'"):
        train(tmp_path, [{"kind": "wandb"}], epochs=1)


def test_previews_are_png_grids_in_the_folder_and_the_trackers(tmp_path: Path) -> None:
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _ = train(tmp_path, [{"kind": "tensorboard"}], epochs=3, preview_every_epochs=2)
    files = sorted(p.name for p in (tmp_path / "run" / "previews").iterdir())
    assert files == ["image-epoch-0002.png", "image-epoch-0003.png"]  # every 2nd, and the last
    with Image.open(tmp_path / "run" / "previews" / files[0]) as image:
        # originals, reconstructions, generations from the label: 3 rows of 8 tiles of 32 px
        assert image.size == (8 * (32 + 2) + 2, 3 * (32 + 2) + 2)
    events = EventAccumulator(result.trackers[0]["log_dir"], size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("preview/image")] == [8, 12]


def test_an_evaluation_report_and_its_figures_go_to_a_tracker(tmp_path: Path, capsys) -> None:
    import argparse

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from core.cli import evaluate

    train(tmp_path, [], epochs=1)
    parser = argparse.ArgumentParser(prog="mmvae")
    evaluate.register(parser.add_subparsers(dest="command"))
    log_dir = tmp_path / "tb-eval"
    trackers = json.dumps([{"kind": "tensorboard", "log_dir": str(log_dir)}])
    args = parser.parse_args(["evaluate", str(tmp_path / "run" / "model"), "--dataset", "digits",
                              "--metrics", "likelihood", "--k", "5", "--output",
                              str(tmp_path / "eval"), "--trackers", trackers])  # fmt: skip
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trackers"] == [{"kind": "tensorboard", "log_dir": str(log_dir)}]
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    [nll] = events.Scalars("evaluation/likelihood/joint_nll")
    assert nll.value == pytest.approx(report["metrics"]["likelihood"]["joint_nll"])
    assert "evaluation/reconstruction_image" in events.Tags()["images"]
    assert "evaluation/text_summary" in events.Tags()["tensors"]
