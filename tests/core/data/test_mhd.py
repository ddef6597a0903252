"""MHD from its publisher's torch.save files, read without unpickling: modalities as MultiVae
builds them, its class-dependent missing-data protocol, and a reader that executes nothing."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.dataset import DatasetError
from core.data.open import modality_specs, open_dataset
from core.data.published import load_mhd
from core.data.published.torch_files import Opaque, read_torch_file

N = 60


def mhd_content(n: int = N, seed: int = 0) -> tuple:
    """The 6-tuple of an mhd_<split>.pt file, small."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.rand(n, 1, 28, 28, generator=g)
    trajectories = torch.randn(n, 200, generator=g)
    audio = torch.randn(n, 4, 8, 32, generator=g)  # [C, H, W]
    return labels, images, trajectories, audio, {"mean": torch.zeros(200)}, (0.5, 2.0)


@pytest.fixture(params=[True, False], ids=["zip", "legacy"])
def mhd_root(request, tmp_path: Path) -> Path:
    for split, seed in (("train", 0), ("test", 1)):
        torch.save(
            mhd_content(seed=seed),
            tmp_path / f"mhd_{split}.pt",
            _use_new_zipfile_serialization=request.param,
        )
    return tmp_path


def test_modalities_read_as_multivae_builds_them(mhd_root: Path, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    data = load_mhd(mhd_root, "train")
    labels, images, trajectories, audio = mhd_content()[:4]
    batch = data.batch()
    assert torch.equal(batch.data["image"], images)
    assert torch.equal(batch.data["trajectory"], trajectories)
    assert torch.equal(batch.data["label"], torch.nn.functional.one_hot(labels, 10).float())
    multivae_audio = torch.cat(list(audio[7]), dim=0).unsqueeze(0).permute(0, 2, 1)
    assert batch.data["audio"].shape == (N, 1, 32, 32)
    assert torch.equal(batch.data["audio"][7], multivae_audio)
    assert torch.equal(data.labels, labels)
    shapes = {s["name"]: s["shape"] for s in modality_specs("mhd:" + str(mhd_root), data)}
    assert shapes == {
        "image": [1, 28, 28],
        "label": [10],
        "trajectory": [200],
        "audio": [1, 32, 32],
    }
    test = open_dataset(f"mhd:{mhd_root}", "test", modalities=["audio", "image"])
    assert test.modalities == ["image", "audio"] and len(test) == N


def test_class_dependent_missingness_follows_multivae(mhd_root: Path) -> None:
    never_zero = [1.0] + [0.0] * 9  # trajectories of class 0 are always missing
    half = [0.5] * 10
    data = load_mhd(
        mhd_root, "train", missing_probabilities={"trajectory": never_zero, "audio": half}, seed=3
    )
    labels = data.labels
    assert not data.masks["trajectory"][labels == 0].any()
    assert data.masks["trajectory"][labels != 0].all() and data.masks["image"].all()
    # the audio mask is MultiVae's draw: the 4th modality in insertion order gets seed + 3
    expected = torch.bernoulli(
        torch.full((N,), 0.5), generator=torch.Generator().manual_seed(3 + 3)
    ).bool()
    assert torch.equal(data.masks["audio"], expected)
    x = data.batch().data["trajectory"]
    assert (x[labels == 0] == 0).all()  # a missing sample reads as zeros
    everything = {m: [0.0, 0.0, 1.0] + [0.0] * 7 for m in ("image", "label", "trajectory", "audio")}
    dropped = load_mhd(mhd_root, "train", missing_probabilities=everything)
    assert len(dropped) == N - N // 10 and (dropped.labels != 2).all()
    assert dropped.metadata["dropped_unobserved"] == N // 10
    audio = {"audio": half}
    complete = load_mhd(mhd_root, "train", missing_probabilities=audio, keep_incomplete=False)
    assert all(k.all() for k in complete.masks.values())
    incomplete = load_mhd(mhd_root, "train", missing_probabilities=audio)
    assert len(complete) == int(incomplete.masks["audio"].sum())
    with pytest.raises(ValueError, match=r"missing_probabilities\.audio: needs 10"):
        load_mhd(mhd_root, "train", missing_probabilities={"audio": [0.5]})
    with pytest.raises(ValueError, match="'sound' is not one of"):
        load_mhd(mhd_root, "train", missing_probabilities={"sound": half})


def test_files_that_are_not_mhd_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"mhd_train\.pt: missing"):
        load_mhd(tmp_path, "train")
    torch.save((torch.arange(3),), tmp_path / "mhd_train.pt")
    with pytest.raises(DatasetError, match="expected MHD's 6-tuple"):
        load_mhd(tmp_path, "train")
    content = list(mhd_content())
    content[1] = torch.rand(N, 1, 14, 14)
    torch.save(tuple(content), tmp_path / "mhd_train.pt")
    with pytest.raises(DatasetError, match="images of shape \\[1, 14, 14\\]"):
        load_mhd(tmp_path, "train")


class Payload:
    """Pickles as a call of os.system: what a hostile file would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_the_reader_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    torch.save({"x": torch.arange(3), "evil": Payload(marker)}, tmp_path / "a.pt")
    content = read_torch_file(tmp_path / "a.pt")
    assert not marker.exists()
    assert isinstance(content["evil"], Opaque) and "system" in content["evil"].what
    assert np.array_equal(content["x"], [0, 1, 2]) and not content["x"].flags.writeable
    legacy = tmp_path / "b.pt"
    with legacy.open("wb") as f:  # a plain pickle stream, as a legacy file would start
        pickle.dump(Payload(marker), f, protocol=2)
    with pytest.raises(DatasetError, match=r"b\.pt: not a torch file"):
        read_torch_file(legacy)
    assert not marker.exists()


def test_a_tensor_reading_past_its_storage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    torch.save(torch.arange(6), path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    name = next(n for n in members if n.endswith("data.pkl"))
    # the pickle says size 6; make it claim 600 values of the same 6-value storage
    members[name] = members[name].replace(b"K\x06\x85", b"MX\x02\x85", 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n, content in members.items():
            archive.writestr(n, content)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(DatasetError, match="reads past its storage's end"):
        read_torch_file(path)
