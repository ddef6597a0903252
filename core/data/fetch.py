"""Downloading a published benchmark's files, each checked against the checksum its publisher (or
torchvision, which pins them) gives: `mmvae data fetch mnist_svhn --to DIR`.

Only datasets whose files have known checksums are fetchable. PolyMNIST's archive has none
published (MultiVae downloads it unverified), so it is left to the user (see its loader). Never
called by tests against the internet: `mirror` points a fetch at any server with the same file
names (tests use one on loopback).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it comes from, its MD5, and where the loader looks for it."""

    name: str
    urls: tuple[str, ...]
    md5: str
    folder: str = ""


_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_SVHN = ("http://ufldl.stanford.edu/housenumbers/",)


def _files(bases: tuple[str, ...], folder: str, names: dict[str, str]) -> list[RemoteFile]:
    return [RemoteFile(n, tuple(b + n for b in bases), md5, folder) for n, md5 in names.items()]


SOURCES: dict[str, list[RemoteFile]] = {
    "mnist_svhn": _files(
        _MNIST,
        "MNIST/raw",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    )
    + _files(
        _SVHN,
        "svhn",
        {
            "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
            "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
        },
    ),
}


class FetchError(ValueError):
    """A file could not be fetched, or what arrived is not what its checksum says."""


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, timeout: float, report: Callable[[int], None]) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
        while block := response.read(1 << 20):
            out.write(block)
            report(len(block))


def fetch(
    name: str,
    to: str | os.PathLike,
    mirror: str | None = None,
    timeout: float = 60.0,
    report: Callable[[str, int], None] = lambda file, n: None,
) -> list[Path]:
    """Every file of dataset `name` under `to` (where its loader looks), downloading those that
    are missing or fail their checksum; a download that fails its checksum is deleted and is
    an error. `mirror`: a base URL to take every file name from instead of the publishers'."""
    if name not in SOURCES:
        raise FetchError(f"dataset: {name!r} has no fetchable files; fetchable: {sorted(SOURCES)}")
    root = Path(to)
    paths = []
    for remote in SOURCES[name]:
        target = root / remote.folder / remote.name
        paths.append(target)
        if target.is_file() and md5_of(target) == remote.md5:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        urls = (mirror.rstrip("/") + "/" + remote.name,) if mirror else remote.urls
        errors = []
        for url in urls:
            try:
                _download(url, partial, timeout, lambda n, f=remote.name: report(f, n))
                break
            except (urllib.error.URLError, OSError) as error:
                errors.append(f"{url}: {error}")
        else:
            partial.unlink(missing_ok=True)
            raise FetchError(f"{remote.name}: could not download ({'; '.join(errors)})")
        got = md5_of(partial)
        if got != remote.md5:
            partial.unlink()
            raise FetchError(f"{remote.name}: MD5 {got} does not match the published {remote.md5}")
        os.replace(partial, target)
    return paths
