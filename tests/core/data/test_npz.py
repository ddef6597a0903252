"""The .npz format: exact round trips, atomic writes and one error per kind of malformed file."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from core.data import DatasetError, MultimodalDataset, load_npz, mcar, save_npz


def _dataset() -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    data = {"image": torch.rand(5, 1, 4, 4, generator=g), "vec": torch.randn(5, 3, generator=g)}
    masks = {"image": torch.tensor([True, False, True, True, False])}
    return MultimodalDataset(data, masks, torch.tensor([0, 2, 1, 2, 0]), {"source": "test"})


def _valid_arrays() -> dict[str, np.ndarray]:
    return {
        "a": np.zeros((3, 2), np.float32),
        "b": np.ones((3, 1, 2, 2), np.float32),
        "mask__a": np.array([True, False, True]),
        "labels": np.array([0, 1, 1]),
        "__metadata__": np.array(json.dumps({"k": 1})),
    }


def _write(tmp_path, **arrays) -> str:
    path = tmp_path / "crafted.npz"
    np.savez(path, **arrays)
    return str(path)


def test_round_trip_is_exact(tmp_path):
    ds = _dataset()
    path = save_npz(ds, tmp_path / "ds.npz", metadata={"extra": [1, 2]})
    back = load_npz(path)
    assert back.modalities == ds.modalities
    for m in ds.modalities:
        assert back.data[m].dtype == torch.float32
        assert torch.equal(back.data[m], ds.data[m])
        assert torch.equal(back.masks[m], ds.masks[m])
    assert torch.equal(back.labels, ds.labels)
    assert back.metadata == {"source": "test", "extra": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.npz"]


def test_round_trip_compressed_without_labels_and_from_a_file_object(tmp_path):
    ds = mcar(MultimodalDataset({"x": torch.randn(50, 4), "y": torch.randn(50, 2)}), 0.4)
    path = save_npz(ds, tmp_path / "c.npz", compress=True)
    back = load_npz(io.BytesIO(path.read_bytes()))
    assert back.labels is None
    assert all(torch.equal(back.data[m], ds.data[m]) for m in ds.modalities)
    assert all(torch.equal(back.masks[m], ds.masks[m]) for m in ds.modalities)
    assert back.metadata == ds.metadata and back.metadata["missingness"]["kind"] == "mcar"


def test_failed_save_leaves_no_file(tmp_path):
    with pytest.raises(DatasetError, match="__metadata__: metadata is not JSON"):
        save_npz(_dataset(), tmp_path / "ds.npz", metadata={"bad": object()})
    bad_name = MultimodalDataset({"labels": torch.ones(2, 1)})
    with pytest.raises(DatasetError, match="labels: not a valid modality name"):
        save_npz(bad_name, tmp_path / "ds.npz")
    assert list(tmp_path.iterdir()) == []


def test_hand_written_file_loads_and_float64_is_converted(tmp_path):
    arrays = _valid_arrays() | {"a": np.zeros((3, 2), np.float64)}
    ds = load_npz(_write(tmp_path, **arrays))
    assert ds.data["a"].dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert ds.masks["a"].tolist() == [True, False, True] and ds.masks["b"].all()
    assert ds.metadata == {"k": 1}


def test_not_a_zip_file(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"hello, not a zip")
    with pytest.raises(DatasetError, match=r"not an \.npz"):
        load_npz(path)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DatasetError, match=r"not an \.npz"):
        load_npz(tmp_path / "single.npy")


def test_object_array_is_refused(tmp_path):
    arrays = _valid_arrays() | {"b": np.array([{"x": 1}, None, 3], dtype=object)}
    with pytest.raises(DatasetError, match="b: object arrays are refused"):
        load_npz(_write(tmp_path, **arrays))


def test_non_array_member_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, **_valid_arrays())
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.txt", "hi")
    with pytest.raises(DatasetError, match=r"notes\.txt: not a \.npy array"):
        load_npz(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask__z": np.ones(3, bool)}, "mask__z: no modality named 'z'"),
        ({"mask__a": np.ones(3, np.int64)}, "mask__a: expected a boolean array, got int64"),
        ({"mask__a": np.ones(4, bool)}, r"mask__a: expected shape \[3\]"),
        ({"a": np.zeros((3, 2), np.int32)}, "a: integer .* refused; convert it to float"),
        ({"a": np.zeros((3, 2), np.complex64)}, "a: expected a floating-point array"),
        ({"a": np.zeros(3, np.float32)}, r"a: expected shape \[N, ...\]"),
        ({"labels": np.zeros(3, np.float32)}, "labels: expected integer class labels"),
        ({"labels": np.array([0, -1, 1])}, "labels: class labels must be non-negative"),
        ({"labels": np.zeros(4, np.int64)}, r"labels: expected shape \[3\]"),
        ({"b": np.ones((4, 1, 2, 2), np.float32)}, "b: has 4 samples, expected 3"),
        ({"bad-name": np.zeros((3, 1), np.float32)}, "bad-name: not a valid array name"),
        ({"__metadata__": np.array("{not json")}, "__metadata__: invalid JSON"),
        ({"__metadata__": np.array("[1, 2]")}, "__metadata__: expected a JSON object"),
        ({"__metadata__": np.zeros(2)}, "__metadata__: expected a JSON string"),
    ],
)
def test_malformed_array_is_named(tmp_path, change, message):
    with pytest.raises(DatasetError, match=message):
        load_npz(_write(tmp_path, **(_valid_arrays() | change)))


def test_sample_with_no_observed_modality_names_the_index(tmp_path):
    arrays = _valid_arrays() | {"mask__b": np.array([True, False, True])}
    with pytest.raises(DatasetError, match="sample 1 has no observed modality"):
        load_npz(_write(tmp_path, **arrays))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_observed_values_are_refused(tmp_path, bad):
    b = np.ones((3, 1, 2, 2), np.float32)
    b[2, 0, 1, 1] = bad
    with pytest.raises(DatasetError, match="b: contains NaN or infinite"):
        load_npz(_write(tmp_path, **(_valid_arrays() | {"b": b})))
    a = np.zeros((3, 2), np.float32)
    a[1] = bad  # under mask__a == False: allowed, stored as zeros
    assert (load_npz(_write(tmp_path, **(_valid_arrays() | {"a": a}))).data["a"] == 0).all()


def test_no_modality_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="no modality array"):
        load_npz(_write(tmp_path, labels=np.zeros(3, np.int64)))


def test_max_bytes_limits_file_and_uncompressed_size(tmp_path):
    path = _write(tmp_path, **_valid_arrays())
    size = (tmp_path / "crafted.npz").stat().st_size
    assert len(load_npz(path, max_bytes=size + 10_000)) == 3
    with pytest.raises(DatasetError, match=f"file: {size} bytes exceeds the limit of 100"):
        load_npz(path, max_bytes=100)
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, a=np.zeros((100_000, 1), np.float32))
    with pytest.raises(DatasetError, match="once uncompressed exceeds the limit"):
        load_npz(bomb, max_bytes=bomb.stat().st_size + 1000)
