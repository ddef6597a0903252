"""Downloading a published benchmark's files, each checked against the checksum its publisher (or
torchvision, which pins them) gives: `mmvae data fetch mnist_svhn --to DIR`.

Nothing is kept unverified. Where no checksum is pinned here (PolyMNIST's Zenodo archive: the
record page lists its MD5, but no code or paper pins one, and MultiVae downloads it unverified),
the user passes the one they read from the publisher (`--md5 PolyMNIST.zip=<hex>`); without it
the fetch refuses. Archives are unpacked where the loader looks, every member checked to stay
inside the target folder. Never called by tests against the internet: `mirror` points a fetch
at any server with the same file names (tests use one on loopback).
"""

from __future__ import annotations

import hashlib
import os
import stat
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it comes from, its MD5 (None: the user must give it), where
    the loader looks for it, and whether it is a zip to unpack there."""

    name: str
    urls: tuple[str, ...]
    md5: str | None
    folder: str = ""
    unpack: bool = False


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
    "polymnist": [
        RemoteFile(
            "PolyMNIST.zip",
            ("https://zenodo.org/record/4899160/files/PolyMNIST.zip",),
            None,
            unpack=True,
        )
    ],
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


def expected_md5(remote: RemoteFile, given: dict[str, str]) -> str:
    """The MD5 a file must have: the pinned one, else the one the user read from the publisher."""
    if remote.md5 is not None:
        if given.get(remote.name, remote.md5).lower() != remote.md5:
            raise FetchError(f"md5: {remote.name}'s MD5 is pinned as {remote.md5}")
        return remote.md5
    if remote.name not in given:
        raise FetchError(
            f"md5: {remote.name} has no checksum pinned here; pass --md5 {remote.name}=<hex> "
            f"with the MD5 its publisher lists ({remote.urls[0]})"
        )
    value = given[remote.name].lower()
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise FetchError(f"md5: {given[remote.name]!r} is not 32 hex digits")
    return value


def unpack(archive: Path, into: Path) -> None:
    """Extract a zip under `into`, refusing members that would land outside it or are links."""
    root = into.resolve()
    with zipfile.ZipFile(archive) as z:
        for member in z.infolist():
            target = (root / member.filename).resolve()
            if not target.is_relative_to(root) or os.path.isabs(member.filename):
                raise FetchError(f"{archive.name}: member {member.filename!r} leaves {into}")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise FetchError(f"{archive.name}: member {member.filename!r} is a link")
        z.extractall(root)


def fetch(
    name: str,
    to: str | os.PathLike,
    mirror: str | None = None,
    timeout: float = 60.0,
    report: Callable[[str, int], None] = lambda file, n: None,
    md5: dict[str, str] | None = None,
) -> list[Path]:
    """Every file of dataset `name` under `to` (where its loader looks), downloading those that
    are missing or fail their checksum (pinned, or given in `md5` by file name); a download
    that fails its checksum is deleted and is an error; archives are unpacked in place.
    `mirror`: a base URL to take every file name from instead of the publishers'."""
    if name not in SOURCES:
        raise FetchError(f"dataset: {name!r} has no fetchable files; fetchable: {sorted(SOURCES)}")
    root = Path(to)
    given = {k: v.strip() for k, v in (md5 or {}).items()}
    expected = {remote.name: expected_md5(remote, given) for remote in SOURCES[name]}
    paths = []
    for remote in SOURCES[name]:
        target = root / remote.folder / remote.name
        paths.append(target)
        if target.is_file() and md5_of(target) == expected[remote.name]:
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
        if got != expected[remote.name]:
            partial.unlink()
            raise FetchError(
                f"{remote.name}: MD5 {got} does not match the expected {expected[remote.name]}"
            )
        if remote.unpack:
            unpack(partial, target.parent)
        os.replace(partial, target)
    return paths


def loader_root(name: str, to: str | os.PathLike) -> Path:
    """The folder to name the fetched dataset by (`<name>:<folder>`): `to`, or for an unpacked
    archive the folder inside it that holds the loader's layout (PolyMNIST: `train/m0`)."""
    root = Path(to)
    if name == "polymnist" and not (root / "train" / "m0").is_dir():
        found = sorted(p.parent.parent for p in root.glob("*/train/m0")) or sorted(
            p.parent.parent for p in root.glob("*/*/train/m0")
        )
        if found:
            return found[0]
    return root
