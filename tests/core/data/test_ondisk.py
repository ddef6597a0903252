"""ArrayFolder: a dataset of .npy files read row by row, its transforms, splits and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from core.data import DatasetError, MultimodalDataset, mcar
from core.data.ondisk import ArrayFolder, write_array_folder
from core.data.transforms import parse_transforms
from core.models import build_model
from core.training import Trainer
from core.training.batches import as_batch

BYTES = {"kind": "scale", "factor": 1 / 255}


def sample_data(n: int = 30) -> MultimodalDataset:
    """Byte-valued images, a vector modality missing in every third sample, labels."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 4, 4), generator=g).float()
    vectors = torch.randn(n, 3, generator=g)
    masks = {"vec": torch.arange(n) % 3 != 0}
    return MultimodalDataset({"image": images, "vec": vectors}, masks, torch.arange(n) % 5)


def write(root: Path, data: MultimodalDataset, config: dict | None = None) -> Path:
    chunks = [data.subset(slice(i, i + 7)) for i in range(0, len(data), 7)]
    config = config or {"transforms": {"image": [BYTES]}}
    return write_array_folder(root, chunks, len(data), config, dtypes={"image": np.uint8})


def test_written_in_chunks_and_read_back_exactly(tmp_path: Path) -> None:
    data = sample_data()
    folder = ArrayFolder(write(tmp_path / "d", data))
    assert np.load(tmp_path / "d" / "image.npy").dtype == np.uint8
    assert len(folder) == 30 and folder.modalities == ["image", "vec"]
    assert folder.shapes == {"image": (1, 4, 4), "vec": (3,)}
    whole = folder.batch()
    assert torch.equal(whole.data["image"], data.data["image"] * (1 / 255))
    assert torch.equal(whole.data["vec"], data.data["vec"])
    assert torch.equal(whole.masks["vec"], data.masks["vec"]) and torch.equal(
        whole.labels, data.labels
    )


def test_a_batch_reads_only_its_rows_in_runs(tmp_path: Path, monkeypatch) -> None:
    data = sample_data()
    folder = ArrayFolder(write(tmp_path / "d", data))
    reads: list[int] = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, size, at: reads.append(size) or real(fd, size, at))
    batch = folder.__getitems__([21, 5, 6, 5, 7])
    assert torch.equal(batch.data["vec"], data.data["vec"][[21, 5, 6, 5, 7]])
    assert torch.equal(batch.labels, data.labels[[21, 5, 6, 5, 7]])
    # sorted, the rows [5, 5, 6, 7, 21] run as [5], [5, 6, 7], [21]: three reads per modality
    # of 16-byte image rows (uint8 1x4x4), then of 12-byte vector rows (float32 x 3)
    assert reads == [16, 48, 16, 12, 36, 12]


def test_splits_by_range_or_index_file(tmp_path: Path) -> None:
    root = write(tmp_path / "d", sample_data())
    np.save(root / "split__test.npy", np.array([3, 1, 29]))
    config = {
        "transforms": {"image": [BYTES]},
        "splits": {"train": [0, 20], "test": "split__test.npy"},
    }
    (root / "dataset.json").write_text(json.dumps(config))
    train, test = ArrayFolder(root, "train"), ArrayFolder(root, "test")
    assert len(train) == 20 and torch.equal(test.labels, torch.tensor([3, 1, 29]) % 5)
    assert torch.equal(test.batch().data["vec"], sample_data().data["vec"][[3, 1, 29]])
    with pytest.raises(DatasetError, match=r"split 'valid': unknown; dataset\.json names"):
        ArrayFolder(root, "valid")
    config["splits"]["test"] = "../split__test.npy"
    (root / "dataset.json").write_text(json.dumps(config))
    with pytest.raises(DatasetError, match="is not a file name of this folder"):
        ArrayFolder(root, "test")
    config["splits"]["test"] = [25, 40]
    (root / "dataset.json").write_text(json.dumps(config))
    with pytest.raises(DatasetError, match=r"row indices must lie in \[0, 29\]"):
        ArrayFolder(root, "test")


def test_missingness_and_subsets_keep_rows_on_disk(tmp_path: Path) -> None:
    folder = ArrayFolder(write(tmp_path / "d", sample_data()))
    hidden = mcar(folder, 0.5, seed=1)
    assert isinstance(hidden, ArrayFolder) and hidden.metadata["missingness"]
    assert torch.equal(hidden.batch().masks["image"], hidden.masks["image"])
    assert not hidden.batch().data["image"][~hidden.masks["image"]].any()
    part = folder.subset(torch.tensor([4, 2]))
    assert torch.equal(part.batch().data["vec"], sample_data().data["vec"][[4, 2]])


def test_training_on_disk_gives_the_weights_of_training_in_memory(tmp_path: Path) -> None:
    data = sample_data()
    folder = ArrayFolder(write(tmp_path / "d", data))
    memory = MultimodalDataset(
        {"image": data.data["image"] * (1 / 255), "vec": data.data["vec"]}, data.masks, data.labels
    )
    modalities = [{"name": "image", "shape": [1, 4, 4]}, {"name": "vec", "shape": [3]}]
    network = {"kind": "mlp", "hidden": [8]}
    config = {"model_type": "mvae", "latent_dim": 2, "modalities": modalities}
    config.update(encoder=network, decoder=network)
    weights = []
    for dataset in (folder, memory):
        torch.manual_seed(0)
        model = build_model(config)
        Trainer(model, dataset, None, {"epochs": 2, "batch_size": 8, "device": "cpu"}).fit()
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_dataloader_workers_reopen_the_files(tmp_path: Path) -> None:
    folder = ArrayFolder(write(tmp_path / "d", sample_data()))
    loader = DataLoader(
        folder, batch_sampler=[[0, 1], [28, 29]], collate_fn=as_batch, num_workers=1
    )
    batches = list(loader)
    assert torch.equal(batches[1].data["vec"], sample_data().data["vec"][[28, 29]])


def test_bad_files_are_refused_with_the_file_named(tmp_path: Path) -> None:
    root = write(tmp_path / "d", sample_data())
    np.save(root / "vec.npy", np.array([[object()]] * 30), allow_pickle=True)
    with pytest.raises(DatasetError, match=r"vec\.npy: object arrays are refused"):
        ArrayFolder(root)
    np.save(root / "vec.npy", np.asfortranarray(np.zeros((30, 3, 2))))
    with pytest.raises(DatasetError, match=r"vec\.npy: expected a C-ordered"):
        ArrayFolder(root)
    np.save(root / "vec.npy", np.zeros((30, 3)))
    (root / "vec.npy").write_bytes((root / "vec.npy").read_bytes()[:-8])
    with pytest.raises(DatasetError, match=r"vec\.npy: truncated"):
        ArrayFolder(root)
    np.save(root / "vec.npy", np.zeros((29, 3)))
    with pytest.raises(DatasetError, match=r"vec.npy: expected shape \[30, ...\]"):
        ArrayFolder(root)
    (root / "vec.npy").write_bytes(b"not an array")
    with pytest.raises(DatasetError, match=r"vec\.npy: not a readable \.npy array"):
        ArrayFolder(root)


def test_non_finite_values_are_refused_where_observed_only(tmp_path: Path) -> None:
    data = sample_data()
    vec = data.data["vec"].clone()
    vec[0] = float("nan")  # sample 0 does not observe vec: fine
    vec[4] = float("inf")
    root = write(tmp_path / "d", data)
    np.save(root / "vec.npy", vec.numpy())  # raw values, as another tool would write them
    folder = ArrayFolder(root)
    assert torch.equal(folder.batch(torch.tensor([0, 1])).data["vec"][0], torch.zeros(3))
    with pytest.raises(DatasetError, match=r"vec\.npy: row 4 contains NaN or infinite values"):
        folder.batch(torch.tensor([3, 4]))


def test_a_sample_with_nothing_observed_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "d", sample_data())
    np.save(root / "mask__image.npy", np.arange(30) % 3 != 0)
    with pytest.raises(DatasetError, match="sample 0 has no observed modality"):
        ArrayFolder(root)


def test_transforms_are_validated_and_change_shapes() -> None:
    resize = parse_transforms(
        [{"kind": "resize", "size": [8, 6]}, {"kind": "normalize", "mean": [0.5], "std": [0.25]}]
    )
    x = torch.full((2, 1, 4, 4), 0.75)
    from core.data.transforms import apply, output_shape

    assert output_shape(resize, (1, 4, 4)) == (1, 8, 6)
    assert torch.allclose(apply(resize, x), torch.ones(2, 1, 8, 6))
    with pytest.raises(ValueError, match="resize: needs images"):
        output_shape(resize, (3,))
    with pytest.raises(ValueError, match="std must be positive"):
        parse_transforms([{"kind": "normalize", "mean": [0], "std": [0]}])
    with pytest.raises(ValueError, match="kind"):
        parse_transforms([{"kind": "rotate"}])


def test_augmentations_apply_to_training_splits_only(tmp_path: Path) -> None:
    from core.data.open import open_dataset
    from core.data.transforms import apply

    flip, crop = parse_transforms(
        [{"kind": "random_flip", "p": 1.0}, {"kind": "random_crop", "padding": 1}]
    )
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    assert torch.equal(apply([flip], x), x)  # not a training split: no augmentation
    assert torch.equal(apply([flip], x, augment=True), x.flip(-1))
    torch.manual_seed(0)
    shifted = apply([crop], x, augment=True)
    assert shifted.shape == x.shape
    torch.manual_seed(0)
    assert torch.equal(apply([crop], x, augment=True), shifted)  # from torch's seeded generator
    data = sample_data(20)
    config = {"transforms": {"image": [BYTES, {"kind": "random_flip", "p": 1.0}]},
              "splits": {"train": [0, 10], "test": [10, 20]}}  # fmt: skip
    root = write(tmp_path / "d", data, config)
    train, test = open_dataset(str(root), "train"), open_dataset(str(root), "test")
    images = data.data["image"] * (1 / 255)
    assert torch.equal(train.batch().data["image"], images[:10].flip(-1))
    assert torch.equal(test.batch().data["image"], images[10:])
    write(tmp_path / "e", data, {"transforms": {"vec": [{"kind": "random_flip"}]}})
    with pytest.raises(DatasetError, match="transforms of vec: random_flip: needs images"):
        ArrayFolder(tmp_path / "e")


def test_serving_transforms_map_data_units_to_what_training_read() -> None:
    from core.data.transforms import apply, serving_transforms

    normalize = {"kind": "normalize", "mean": [0.5], "std": [0.25]}
    chain = parse_transforms(
        [BYTES, {"kind": "resize", "size": [6, 6]}, {"kind": "random_flip"}, normalize]
    )
    served = serving_transforms(chain, "image", np.dtype(np.uint8))
    assert served == [{"kind": "normalize", "mean": [0.5], "std": [0.25]}]  # 255 · 1/255 folded
    pixels = torch.randint(0, 256, (3, 1, 4, 4)).float()
    png = apply(parse_transforms(served), pixels / 255)  # what the service decodes, then applies
    trained = apply(chain, pixels)
    resized = apply(parse_transforms([{"kind": "resize", "size": [6, 6]}]), png)
    assert torch.allclose(resized, trained, atol=1e-5)  # resizing commutes with the mapping
    assert serving_transforms(parse_transforms([BYTES]), "image", np.dtype(np.uint8)) is None
    assert serving_transforms([], "image", np.dtype(np.uint8)) == [
        {"kind": "scale", "factor": 255.0, "offset": 0.0}
    ]
    shift = [{"kind": "scale", "factor": 2.0, "offset": 1.0}]
    assert serving_transforms(parse_transforms(shift), "vector", np.dtype(np.float32)) == shift
    assert serving_transforms(parse_transforms(shift), "categorical", None) is None


def test_a_model_trained_on_a_folder_serves_with_its_transforms(tmp_path: Path) -> None:
    from core.cli.train import load_data
    from core.models.config import ModalitySpec

    normalize = {"kind": "normalize", "mean": [0.5], "std": [0.25]}
    shift = {"kind": "scale", "factor": 0.5, "offset": -1.0}
    config = {"transforms": {"image": [BYTES, normalize], "vec": [shift]}}
    root = write(tmp_path / "d", sample_data(), config)
    _, _, specs = load_data(str(root), False, {})
    by_name = {s["name"]: ModalitySpec.model_validate(s) for s in specs}
    assert by_name["image"].input_transforms == [normalize]
    assert by_name["vec"].input_transforms == [shift]
    declared = [{"name": "image", "shape": [1, 4, 4], "input_transforms": []},
                {"name": "vec", "shape": [3]}]  # fmt: skip
    root = write(tmp_path / "e", sample_data(), {**config, "modalities": declared})
    _, _, specs = load_data(str(root), False, {})
    assert [s.get("input_transforms") for s in specs] == [[], [shift]]  # a declared one wins
