"""MultimodalDataset, Batch and collate: validation, masking and DataLoader batching."""

import pytest
import torch
from torch.utils.data import DataLoader

from core.data import Batch, DatasetError, MultimodalDataset, collate


def _dataset(n: int = 6) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    data = {"a": torch.rand(n, 3, generator=g), "b": torch.rand(n, 1, 2, 2, generator=g) + 1}
    masks = {"a": torch.tensor([True, False] * (n // 2)), "b": torch.tensor([True] * n)}
    return MultimodalDataset(data, masks, torch.arange(n) % 3, {"note": "x"})


def test_values_under_false_masks_become_zeros():
    ds = _dataset()
    assert (ds.data["a"][~ds.masks["a"]] == 0).all()
    assert (ds.data["a"][ds.masks["a"]] != 0).all()
    assert ds.missing_rate() == {"a": 0.5, "b": 0.0}
    assert ds.shapes == {"a": (3,), "b": (1, 2, 2)}


def test_nan_under_a_false_mask_is_allowed_and_zeroed():
    x = torch.tensor([[1.0], [float("nan")]])
    ds = MultimodalDataset({"a": x, "b": torch.ones(2, 1)}, {"a": torch.tensor([True, False])})
    assert ds.data["a"].tolist() == [[1.0], [0.0]]


def test_all_missing_sample_is_rejected():
    masks = {"a": torch.tensor([True, False]), "b": torch.tensor([True, False])}
    with pytest.raises(DatasetError, match="sample 1 has no observed modality"):
        MultimodalDataset({"a": torch.ones(2, 1), "b": torch.ones(2, 1)}, masks)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_observed_value_is_rejected(bad):
    with pytest.raises(DatasetError, match="a: contains NaN"):
        MultimodalDataset({"a": torch.tensor([[0.0], [bad]])})


def test_malformed_inputs_name_the_array():
    with pytest.raises(DatasetError, match="a: expected a floating-point"):
        MultimodalDataset({"a": torch.ones(2, 1, dtype=torch.long)})
    with pytest.raises(DatasetError, match="b: has 3 samples, expected 2"):
        MultimodalDataset({"a": torch.ones(2, 1), "b": torch.ones(3, 1)})
    with pytest.raises(DatasetError, match="mask__a: expected a boolean"):
        MultimodalDataset({"a": torch.ones(2, 1)}, {"a": torch.ones(2)})
    with pytest.raises(DatasetError, match="no modality named"):
        MultimodalDataset({"a": torch.ones(2, 1)}, {"z": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(DatasetError, match="labels: expected integer"):
        MultimodalDataset({"a": torch.ones(2, 1)}, labels=torch.zeros(2))


def test_getitem_collate_and_batch_agree():
    ds = _dataset()
    via_collate = collate([ds[i] for i in (4, 1)])
    via_batch = ds.batch(torch.tensor([4, 1]))
    for b in (via_collate, via_batch):
        assert isinstance(b, Batch) and b.size == 2
    for m in ds.modalities:
        assert torch.equal(via_collate.data[m], via_batch.data[m])
        assert torch.equal(via_collate.masks[m], via_batch.masks[m])
    assert torch.equal(via_collate.labels, via_batch.labels)
    assert via_batch.mask_matrix(["a", "b"]).tolist() == [[True, False], [True, True]]


def test_dataloader_uses_getitems_and_yields_batches():
    ds = _dataset(10)
    loader = DataLoader(ds, batch_size=4, shuffle=False, collate_fn=lambda b: b)
    batches = list(loader)
    assert [b.size for b in batches] == [4, 4, 2]
    assert all(isinstance(b, Batch) for b in batches)
    assert torch.equal(torch.cat([b.labels for b in batches]), ds.labels)
    assert torch.equal(torch.cat([b.data["b"] for b in batches]), ds.data["b"])


def test_subset_and_with_masks_keep_metadata():
    ds = _dataset()
    sub = ds.subset(slice(0, 2))
    assert len(sub) == 2 and sub.metadata == {"note": "x"}
    masked = ds.with_masks({"b": torch.tensor([False, True] * 3)})
    assert masked.metadata == {"note": "x"} and masked.masks["a"].all()
    assert (masked.data["b"][::2] == 0).all()


def test_to_a_device_copies_every_tensor_and_nbytes_counts_them():
    data = MultimodalDataset(
        {"a": torch.ones(5, 3), "b": torch.zeros(5, 2, 2)}, labels=torch.arange(5)
    )
    assert data.nbytes == 5 * 3 * 4 + 5 * 4 * 4 + 2 * 5 + 5 * 8  # floats, two masks, labels
    assert data.to("cpu") is data
    moved = data.to("meta")
    assert moved is not data and moved.modalities == data.modalities
    assert moved.data["b"].device.type == "meta" and moved.data["b"].shape == (5, 2, 2)
    assert moved.masks["a"].device.type == "meta" and moved.labels.device.type == "meta"
    assert data.data["a"].device.type == "cpu" and moved.nbytes == data.nbytes
