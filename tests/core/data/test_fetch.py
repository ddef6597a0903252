"""`mmvae data fetch`: files downloaded over real HTTP (a server on loopback), checked against
their MD5, laid out where the loader reads them; bad downloads never stay."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.cli import data as data_cli
from core.data import fetch as fetch_module
from core.data.fetch import SOURCES, FetchError, RemoteFile, fetch
from core.data.published import load_mnist_svhn
from tests.core.data.test_published import (
    MNIST_LABELS,
    SVHN_LABELS,
    mnist_images,
    svhn_mat,
    write_idx,
)


class Served:
    """A static file server on loopback that counts the requests for each path."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.hits = folder, {}
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                served.hits[self.path] = served.hits.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    folder = tmp_path / "remote"
    folder.mkdir()
    server = Served(folder)
    yield server
    server.server.shutdown()


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def publish(served: Served, name: str, content: bytes) -> str:
    (served.folder / name).write_bytes(content)
    return md5(content)


def test_downloads_checks_and_keeps_what_is_already_right(served, tmp_path, monkeypatch) -> None:
    checksum = publish(served, "a.bin", b"payload")
    dead = "http://127.0.0.1:9/a.bin"  # nothing listens on the discard port: the next URL is used
    remote = RemoteFile("a.bin", (dead, f"{served.url}/a.bin"), checksum, "sub")
    monkeypatch.setitem(SOURCES, "tiny", [remote])
    seen: list[int] = []
    [path] = fetch("tiny", tmp_path / "out", report=lambda file, n: seen.append(n))
    assert path == tmp_path / "out" / "sub" / "a.bin" and path.read_bytes() == b"payload"
    assert sum(seen) == 7
    fetch("tiny", tmp_path / "out")
    assert served.hits == {"/a.bin": 1}  # present with the right MD5: not downloaded again
    path.write_bytes(b"tampered")
    fetch("tiny", tmp_path / "out")
    assert path.read_bytes() == b"payload" and served.hits == {"/a.bin": 2}


def test_a_download_that_fails_its_checksum_is_deleted(served, tmp_path, monkeypatch) -> None:
    publish(served, "a.bin", b"not what was published")
    monkeypatch.setitem(SOURCES, "tiny", [RemoteFile("a.bin", (f"{served.url}/a.bin",), md5(b"x"))])
    with pytest.raises(FetchError, match=r"a\.bin: MD5 \w+ does not match the expected"):
        fetch("tiny", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(FetchError, match=r"a\.bin: could not download"):
        fetch("tiny", tmp_path / "out", mirror=f"{served.url}/missing")
    with pytest.raises(FetchError, match="'nope' has no fetchable files"):
        fetch("nope", tmp_path)


def test_mnist_svhn_fetched_from_a_mirror_loads(served, tmp_path, monkeypatch) -> None:
    """The real file list and layout, with checksums of fixture files in the real formats."""
    remote = served.folder
    for split, labels in (("train", MNIST_LABELS), ("t10k", MNIST_LABELS[:3])):
        write_idx(remote / f"{split}-images-idx3-ubyte.gz", mnist_images(labels))
        write_idx(remote / f"{split}-labels-idx1-ubyte.gz", labels)
    svhn_mat(remote / "train_32x32.mat", SVHN_LABELS)
    svhn_mat(remote / "test_32x32.mat", SVHN_LABELS[:3])
    files = [
        dataclasses.replace(f, md5=fetch_module.md5_of(remote / f.name))
        for f in SOURCES["mnist_svhn"]
    ]
    monkeypatch.setitem(SOURCES, "mnist_svhn", files)
    parser = argparse.ArgumentParser(prog="mmvae")
    data_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "fetch", "mnist_svhn", "--to", str(tmp_path / "d"),
                              "--mirror", served.url, "--no-progress"])  # fmt: skip
    assert args.func(args) == 0
    assert len(served.hits) == 6
    assert len(load_mnist_svhn(tmp_path / "d", "train", data_multiplication=1)) == 5


def polymnist_zip(tmp_path: Path, top: str = "PolyMNIST/MMNIST") -> bytes:
    """A PolyMNIST archive in the layout the loader reads, under `top`."""
    from tests.core.data.test_published import write_polymnist

    tree = tmp_path / "tree"
    for split, digits in (("train", [1, 2, 3]), ("test", [4])):
        write_polymnist(tree / top, split, digits)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(tree.rglob("*.png")):
            archive.write(path, path.relative_to(tree).as_posix())
    return buffer.getvalue()


def test_polymnist_is_fetched_only_against_a_checksum_the_user_gives(
    served, tmp_path, monkeypatch, capsys
) -> None:
    checksum = publish(served, "PolyMNIST.zip", polymnist_zip(tmp_path))
    parser = argparse.ArgumentParser(prog="mmvae")
    data_cli.register(parser.add_subparsers(dest="command"))
    command = ["data", "fetch", "polymnist", "--to", str(tmp_path / "d"), "--mirror", served.url,
               "--no-progress"]  # fmt: skip
    args = parser.parse_args(command)
    with pytest.raises(FetchError, match=r"pass --md5 PolyMNIST\.zip=<hex>"):
        args.func(args)
    assert served.hits == {}  # refused before downloading anything
    args = parser.parse_args([*command, "--md5", f"PolyMNIST.zip={'0' * 32}"])
    with pytest.raises(FetchError, match=r"does not match the expected 0{32}"):
        args.func(args)
    assert not (tmp_path / "d" / "PolyMNIST").exists()  # a bad archive is never unpacked
    args = parser.parse_args([*command, "--md5", f"PolyMNIST.zip={checksum.upper()}"])
    assert args.func(args) == 0
    reference = json.loads(capsys.readouterr().out)["dataset"]
    assert reference == f"polymnist:{tmp_path / 'd' / 'PolyMNIST' / 'MMNIST'}"
    from core.data.open import open_dataset

    assert len(open_dataset(reference, "train")) == 3 and len(open_dataset(reference, "test")) == 1


def test_an_archive_member_leaving_its_folder_is_refused(served, tmp_path, monkeypatch) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok/a.txt", "fine")
        archive.writestr("../escaped.txt", "outside")
    checksum = publish(served, "x.zip", buffer.getvalue())
    remote = RemoteFile("x.zip", (f"{served.url}/x.zip",), checksum, "in", unpack=True)
    monkeypatch.setitem(SOURCES, "tiny", [remote])
    with pytest.raises(FetchError, match=r"member '\.\./escaped\.txt' leaves"):
        fetch("tiny", tmp_path / "out")
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not (tmp_path / "out" / "in" / "ok").exists()  # nothing extracted at all


def test_every_fetchable_file_has_an_md5_and_a_https_or_http_url() -> None:
    for files in SOURCES.values():
        for f in files:
            assert f.md5 is None or (len(f.md5) == 32 and int(f.md5, 16) >= 0)
            assert f.urls and all(
                u.startswith(("https://", "http://")) and u.endswith(f.name) for u in f.urls
            )
