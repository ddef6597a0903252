"""In-memory data on the training device: the policy, the copies and the batches indexed there."""

from __future__ import annotations

import gc

import pytest
import torch
from torch.utils.data import Dataset

import core.training.batches as batches_module
from core.training import Trainer, TrainerConfig
from core.training.batches import iterate, loaded_batches
from core.training.device_data import DeviceDatasets, keeps_on_device
from tests.core.training.conftest import synthetic, tiny_mvae

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
META = torch.device("meta")  # a device this CPU-only machine has, to see the copies made


@pytest.mark.parametrize(
    ("policy", "device", "nbytes", "free", "kept"),
    [
        ("auto", CPU, 10**12, None, True),  # on the CPU the data is where it would be copied to
        ("never", CPU, 10, None, False),
        ("auto", CUDA, 250, 1000, True),
        ("auto", CUDA, 251, 1000, False),  # over a quarter of the free memory
        ("auto", META, 1, None, False),  # free memory unknown
        ("always", CUDA, 10**12, 1000, True),
        ("never", CUDA, 1, 1000, False),
    ],
)
def test_the_policy_keeps_data_on_the_device_where_it_fits(policy, device, nbytes, free, kept):
    assert keeps_on_device(policy, device, nbytes, free) is kept


def test_a_dataset_is_copied_to_the_device_once_and_forgotten_with_it():
    data = synthetic(20)
    on_device = DeviceDatasets(META, "always", num_workers=0)
    copy = on_device(data)
    assert copy is not data and on_device(data) is copy
    assert {x.device.type for x in [*copy.data.values(), *copy.masks.values(), copy.labels]} == {
        "meta"
    }
    assert copy.shapes == data.shapes and len(copy) == len(data)
    assert data.data["a"].device.type == "cpu"  # the original is left as it was
    del data, copy
    gc.collect()
    assert len(on_device._copies) == 0


def test_data_stays_where_it_is_with_workers_a_loader_or_the_cpu():
    data = synthetic(20)
    assert DeviceDatasets(META, "always", num_workers=2)(data) is data
    assert DeviceDatasets(META, "never", num_workers=0)(data) is data
    assert DeviceDatasets(CPU, "auto", num_workers=0)(data) is data
    assert DeviceDatasets(CPU, "auto", num_workers=0).indexes
    assert not DeviceDatasets(CPU, "never", num_workers=0).indexes

    class Rows(Dataset):
        def __len__(self) -> int:
            return 3

    rows = Rows()
    assert DeviceDatasets(META, "always", num_workers=0)(rows) is rows


def test_batches_indexed_on_the_device_are_the_loaders_batches(monkeypatch):
    data = synthetic(30)
    order = [[5, 0, 29], [7, 7, 1], [12]]
    expected = list(loaded_batches(data, order, CPU, num_workers=0, seed=0))

    def no_loader(*args, **kwargs):
        raise AssertionError("an in-memory dataset on the device needs no DataLoader")

    monkeypatch.setattr(batches_module, "DataLoader", no_loader)
    got = list(iterate(data, order, CPU))
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.modalities == b.modalities and torch.equal(a.labels, b.labels)
        for m in a.modalities:
            assert torch.equal(a.data[m], b.data[m]) and torch.equal(a.masks[m], b.masks[m])
    assert list(iterate(data, [], CPU)) == []
    with pytest.raises(AssertionError, match="no DataLoader"):  # workers: the loader's path
        list(iterate(data, order, CPU, num_workers=1))
    with pytest.raises(AssertionError, match="no DataLoader"):  # data_on_device="never"
        list(iterate(data, order, CPU, indexed=False))


def test_always_on_the_device_with_workers_is_a_config_error():
    with pytest.raises(ValueError, match=r"data_on_device: 'always' .* num_workers must be 0"):
        TrainerConfig(data_on_device="always", num_workers=2)
    with pytest.raises(ValueError, match="data_on_device"):
        TrainerConfig(data_on_device="sometimes")
    assert TrainerConfig().data_on_device == "auto"


def test_the_trainer_reads_its_train_and_eval_data_through_the_device_copies(monkeypatch):
    train, held_out = synthetic(40), synthetic(16, seed=1)
    config = TrainerConfig(epochs=1, batch_size=16, device="cpu", keep_freed_cpu_memory=False)
    seen = []
    real = DeviceDatasets.__call__
    monkeypatch.setattr(DeviceDatasets, "__call__", lambda s, d: seen.append(d) or real(s, d))
    Trainer(tiny_mvae(), train, held_out, config).fit()
    assert [d is train for d in seen] == [True, False] and seen[1] is held_out
