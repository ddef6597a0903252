"""Published datasets read from small files written here in the publishers' formats (IDX, MATLAB
v5 .mat, PNG folders): modalities, shapes, pairings, labels, splits, masks and errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from core.data import DatasetError, mcar
from core.data.published import load_published
from core.data.published.idx import read_idx
from core.data.published.mnist_svhn import load_mnist_svhn, pair_by_class
from core.data.published.polymnist import load_polymnist

MNIST_LABELS = np.array([0, 1, 0, 1, 1, 2, 2])  # class counts 2, 3, 2
SVHN_LABELS = np.array([10, 1, 10, 10, 2, 1])  # SVHN's 10 is the digit 0: counts 3, 2, 1


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def mnist_images(labels: np.ndarray) -> np.ndarray:
    """Image i holds i + 1 at its first pixel, so a read image tells its row."""
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(len(labels)) + 1
    return images


def svhn_mat(path: Path, labels: np.ndarray) -> None:
    x = np.zeros((32, 32, 3, len(labels)), dtype=np.uint8)
    x[0, 0, 2, :] = np.arange(len(labels)) + 100  # blue channel of the first pixel: the row
    savemat(path, {"X": x, "y": labels.reshape(-1, 1).astype(np.uint8)})


@pytest.fixture
def mnist_svhn_root(tmp_path: Path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, labels in (("train", MNIST_LABELS), ("t10k", MNIST_LABELS[:3])):
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", mnist_images(labels))
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", labels)
    svhn_mat(tmp_path / "train_32x32.mat", SVHN_LABELS)
    svhn_mat(tmp_path / "test_32x32.mat", SVHN_LABELS[:3])
    return tmp_path


def test_idx_files_read_back_and_bad_ones_are_refused(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", array)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), array)
    (tmp_path / "b.idx").write_bytes((tmp_path / "a.idx").read_bytes()[:-1])
    with pytest.raises(DatasetError, match=r"b\.idx: 39 bytes where its header declares 40"):
        read_idx(tmp_path / "b.idx")
    (tmp_path / "c.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DatasetError, match=r"c\.idx: not an IDX file"):
        read_idx(tmp_path / "c.idx")


def test_pairs_are_same_class_first_rows_each_used_multiplication_times() -> None:
    a, b = pair_by_class(MNIST_LABELS, SVHN_LABELS % 10, multiplication=3, max_per_class=99, seed=0)
    # per class min(count a, count b): 0 -> 2, 1 -> 2, 2 -> 1; three times each
    assert len(a) == len(b) == 3 * (2 + 2 + 1)
    assert np.array_equal(MNIST_LABELS[a], (SVHN_LABELS % 10)[b])
    assert sorted(set(a)) == [0, 1, 2, 3, 5]  # the first two 0s, first two 1s, first 2
    assert sorted(set(b)) == [0, 1, 2, 4, 5]
    assert all(np.sum(a == row) == 3 for row in set(a))
    again, _ = pair_by_class(MNIST_LABELS, SVHN_LABELS % 10, 3, 99, seed=0)
    other, _ = pair_by_class(MNIST_LABELS, SVHN_LABELS % 10, 3, 99, seed=1)
    assert np.array_equal(a, again) and not np.array_equal(a, other)
    capped, _ = pair_by_class(MNIST_LABELS, SVHN_LABELS % 10, 1, max_per_class=1, seed=0)
    assert len(capped) == 3


def test_mnist_svhn_reads_the_published_files(mnist_svhn_root: Path) -> None:
    data = load_mnist_svhn(mnist_svhn_root, "train", data_multiplication=2)
    assert len(data) == 2 * 5 and data.shapes == {"mnist": (1, 28, 28), "svhn": (3, 32, 32)}
    batch = data.batch()
    mnist_rows = (batch.data["mnist"][:, 0, 0, 0] * 255).round().long() - 1
    svhn_rows = (batch.data["svhn"][:, 2, 0, 0] * 255).round().long() - 100
    assert torch.equal(batch.labels, torch.as_tensor(MNIST_LABELS)[mnist_rows])
    assert torch.equal(batch.labels, torch.as_tensor(SVHN_LABELS % 10)[svhn_rows])
    assert batch.data["mnist"].max() <= 1 and batch.data["svhn"].dtype == torch.float32
    test = load_published("mnist_svhn", str(mnist_svhn_root), "test", data_multiplication=1)
    assert sorted(test.labels.tolist()) == [0, 0, 1]  # MNIST 0, 1, 0 and SVHN 0, 1, 0


def test_mnist_svhn_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: not found in"):
        load_mnist_svhn(tmp_path)


def write_polymnist(root: Path, split: str, digits: list[int], size: int = 28) -> None:
    """Sample j: file `<j>.<digit>.png` in every m<k>, its first pixel (k, j, 7)."""
    for k in range(5):
        folder = root / split / f"m{k}"
        folder.mkdir(parents=True)
        for j, digit in enumerate(digits):
            pixels = np.zeros((size, size, 3), dtype=np.uint8)
            pixels[0, 0] = (k, j, 7)
            Image.fromarray(pixels, "RGB").save(folder / f"{j}.{digit}.png")


def test_polymnist_pairs_views_by_file_name(tmp_path: Path) -> None:
    write_polymnist(tmp_path, "train", [3, 1, 4, 1, 5, 9])
    data = load_polymnist(tmp_path, "train")
    assert data.modalities == ["m0", "m1", "m2", "m3", "m4"] and len(data) == 6
    batch = data.batch()
    first = {m: (x[:, :, 0, 0] * 255).round().long() for m, x in batch.data.items()}
    for k in range(5):
        assert (first[f"m{k}"][:, 0] == k).all()
        assert torch.equal(first[f"m{k}"][:, 1], first["m0"][:, 1])  # one sample, one name
    digits = torch.tensor([3, 1, 4, 1, 5, 9])
    assert torch.equal(batch.labels, digits[first["m0"][:, 1]])
    specs = data.modality_specs()
    assert [s["name"] for s in specs] == list(data.modalities)
    assert all(s["shape"] == [3, 28, 28] and s["kind"] == "image" for s in specs)


def test_polymnist_missing_protocol(tmp_path: Path) -> None:
    write_polymnist(tmp_path, "train", list(range(10)) * 4)
    data = load_polymnist(tmp_path, "train", missing_ratio=0.5, seed=3)
    assert data.masks["m0"].all()
    generator = torch.Generator().manual_seed(3 + 2)
    assert torch.equal(data.masks["m2"], torch.rand(40, generator=generator) >= 0.5)
    assert not data.batch().data["m2"][~data.masks["m2"]].any()
    complete = load_polymnist(tmp_path, "train", missing_ratio=0.5, keep_incomplete=False, seed=3)
    assert len(complete) == int(torch.stack(list(data.masks.values())).all(0).sum())
    assert all(k.all() for k in complete.masks.values())
    assert mcar(data, 0.2).masks["m1"].sum() <= data.masks["m1"].sum()


def test_polymnist_refuses_mismatched_or_odd_files(tmp_path: Path) -> None:
    write_polymnist(tmp_path, "train", [1, 2])
    (tmp_path / "train" / "m3" / "1.2.png").unlink()
    with pytest.raises(DatasetError, match=r"m3: its files differ from m0's \(e.g. 1.2.png\)"):
        load_polymnist(tmp_path, "train")
    write_polymnist(tmp_path, "test", [1], size=32)
    with pytest.raises(DatasetError, match=r"m0/0.1.png: 32x32, expected 28x28"):
        load_polymnist(tmp_path, "test")
    (tmp_path / "train" / "m3" / "1.2.png").write_bytes(b"x")
    (tmp_path / "train" / "m0" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"notes\.txt: not named <index>\.<digit>\.png"):
        load_polymnist(tmp_path, "train")
    with pytest.raises(ValueError, match=r"missing_ratio: 1\.0 is not in"):
        load_polymnist(tmp_path, "train", missing_ratio=1.0)


def write_celeba(root: Path, n: int = 6) -> None:
    """torchvision's layout: JPEGs of 178x218, the attribute and partition lists."""
    from core.data.published.celeba import ATTRIBUTES_18

    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    names = [f"x{i}" for i in range(22)] + ATTRIBUTES_18  # 40 names, the 18 among them
    lines = [str(n), " ".join(names)]
    for i in range(n):
        pixels = np.full((218, 178, 3), 40 * i, dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"{i:06d}.jpg", quality=95)
        signs = ["1" if (i + j) % 3 == 0 else "-1" for j in range(40)]
        lines.append(f"{i:06d}.jpg  " + " ".join(signs))
    (root / "celeba" / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    parts = [f"{i:06d}.jpg {0 if i < 4 else 2}" for i in range(n)]
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")


def test_celeba_reads_images_attributes_and_partition(tmp_path: Path) -> None:
    from core.data.published.celeba import load_celeba

    write_celeba(tmp_path)
    train = load_celeba(tmp_path, "train", label_attribute="Male")
    assert len(train) == 4 and train.shapes == {"image": (3, 64, 64), "attributes": (18,)}
    batch = train.batch()
    # image i is flat grey 40 * i (JPEG keeps a flat image to within a level or two)
    assert torch.allclose(
        batch.data["image"].mean((1, 2, 3)), torch.arange(4) * 40 / 255, atol=0.01
    )
    male = 22 + 9  # its column in the fixture's 40
    assert torch.equal(batch.labels, torch.tensor([int((i + male) % 3 == 0) for i in range(4)]))
    first_18 = [(0 + 22 + j) % 3 == 0 for j in range(18)]
    assert torch.equal(batch.data["attributes"][0], torch.tensor(first_18, dtype=torch.float32))
    test = load_published("celeba", str(tmp_path), "test", attributes=40)
    assert len(test) == 2 and test.shapes["attributes"] == (40,) and test.labels is None


def test_celeba_refuses_malformed_lists(tmp_path: Path) -> None:
    from core.data.published.celeba import load_celeba

    write_celeba(tmp_path)
    attr = tmp_path / "celeba" / "list_attr_celeba.txt"
    attr.write_text(attr.read_text().replace("000003.jpg  ", "000003.jpg  2 ", 1))
    with pytest.raises(DatasetError, match=r"list_attr_celeba\.txt: line 6 is not"):
        load_celeba(tmp_path)
    write_celeba(tmp_path / "other")
    (tmp_path / "other" / "celeba" / "img_align_celeba" / "000001.jpg").write_bytes(b"broken")
    with pytest.raises(DatasetError, match=r"000001\.jpg: not a readable image"):
        load_celeba(tmp_path / "other").batch()


def write_cub(root: Path) -> None:
    """Two train classes (3 images), one test class (1 image), 10 captions per image."""
    words = ["a", "small", "bird", "with", "red", "wings", "and", "long", "beak"]
    for split, classes in (
        ("train", {"001.Albatross": 2, "002.Auklet": 1}),
        ("test", {"150.Wren": 1}),
    ):
        captions = []
        for name, count in classes.items():
            folder = root / "cub" / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8), "RGB").save(
                    folder / f"{k}.jpg"
                )
                captions += [f"{' '.join(words[: 3 + (k + j) % 6])}, Zebra{j}." for j in range(10)]
        (root / "cub" / f"text_{'trainval' if split == 'train' else 'test'}classes.txt").write_text(
            "\n".join(captions) + "\n"
        )


def test_cub_captions_become_token_sequences_over_the_train_vocabulary(tmp_path: Path) -> None:
    from core.data.published.cub import load_cub
    from core.data.text import tokenize

    write_cub(tmp_path)
    train = load_cub(tmp_path, "train")
    vocabulary = train.metadata["vocabulary"]
    assert vocabulary[:3] == ["<exc>", "<pad>", "<eos>"]
    assert "zebra3" not in vocabulary and "bird" in vocabulary  # seen 3 times (< 4), 30 times
    assert len(train) == 30 and train.shapes == {
        "image": (3, 64, 64),
        "text": (32, len(vocabulary)),
    }
    assert torch.equal(train.labels, torch.tensor([0] * 20 + [1] * 10))
    batch = train.batch(torch.tensor([11]))  # image 1 of class 0, its second caption
    ids = batch.data["text"][0].argmax(-1).tolist()
    words = tokenize("a small bird with red, zebra1.")
    expected = [vocabulary.index(w) if w in vocabulary else 0 for w in words]
    assert ids[: len(words) + 2] == [*expected, 2, 1]  # then <eos>, <pad>
    assert batch.data["text"].sum() == 32  # one-hot: one token per position
    test = load_published("cub", str(tmp_path), "test")
    assert len(test) == 10 and test.metadata["vocabulary"] == vocabulary
    assert train.modality_specs()[1]["vocabulary"] == vocabulary  # a model trained on it keeps it


def test_cub_refuses_captions_that_do_not_match_the_images(tmp_path: Path) -> None:
    from core.data.published.cub import load_cub

    write_cub(tmp_path)
    path = tmp_path / "cub" / "text_testclasses.txt"
    path.write_text(path.read_text() + "one caption too many\n")
    with pytest.raises(DatasetError, match="11 captions for 1 images"):
        load_cub(tmp_path, "test")


def test_making_translated_polymnist_from_mnist_and_backgrounds(
    mnist_svhn_root: Path, tmp_path: Path
) -> None:
    import argparse

    from core.cli import data as data_cli

    backgrounds = tmp_path / "backgrounds"
    backgrounds.mkdir()
    for k in range(5):
        Image.fromarray(np.full((40, 50, 3), 20 * k, dtype=np.uint8), "RGB").save(
            backgrounds / f"{k}.jpg", quality=100
        )
    raw = mnist_svhn_root / "MNIST" / "raw"
    write_idx(
        raw / "train-images-idx3-ubyte.gz", np.full((7, 28, 28), 255, dtype=np.uint8)
    )  # all ink
    parser = argparse.ArgumentParser(prog="mmvae")
    data_cli.register(parser.add_subparsers(dest="command"))
    out, again = tmp_path / "translated", tmp_path / "again"
    common = [
        "data",
        "make-polymnist",
        "--mnist",
        str(mnist_svhn_root),
        "--backgrounds",
        str(backgrounds),
    ]
    args = parser.parse_args([*common, "--to", str(out), "--translated"])
    assert args.func(args) == 0
    data = load_polymnist(out, "train")
    assert len(data) == 7 and sorted(data.labels.tolist()) == sorted(MNIST_LABELS.tolist())
    images = (data.batch().data["m2"] * 255).round()
    ink = images != images[:, :, :1, :1]  # the digit: the background's colour inverted
    assert torch.allclose(ink.float().mean((1, 2, 3)), torch.full((7,), 21 * 21 / 28**2), atol=0.01)
    args = parser.parse_args([*common, "--to", str(again), "--translated"])
    args.func(args)
    one = (out / "train" / "m1" / "0.1.png").read_bytes()
    assert one == (again / "train" / "m1" / "0.1.png").read_bytes()  # seeded: reproducible
