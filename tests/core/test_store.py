"""The local model store: versions, atomic writes, deletes, names that never escape the root."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from core.cli.hub import register_models
from core.hub import InvalidModelIdError
from core.models import MultimodalVAE
from core.paths import data_dir, hub_cache_dir, store_dir
from core.persistence import ModelFormatError
from core.store import ModelExistsError, ModelNotFoundError, ModelStore
from tests.core.conftest import assert_same_outputs
from tests.core.hub_server import GitRepo, HubServer


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def visible(root: Path) -> list[str]:
    """Everything under the root a reader could see, hidden folders excluded."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def test_save_list_get_load_delete(
    store: ModelStore, tiny_model: MultimodalVAE, other_model: MultimodalVAE
) -> None:
    first = store.save(tiny_model, "tiny")
    second = store.save(other_model, "tiny")
    named = store.save(tiny_model, "tiny", version="best")
    assert (first.version, second.version, named.version) == ("1", "2", "best")
    assert first.path == store.root / "tiny" / "1" and first.model_type == "mvae"
    assert first.source is None and first.created.endswith("+00:00")

    assert [(m.name, m.version) for m in store.list()] == [
        ("tiny", "best"),
        ("tiny", "1"),
        ("tiny", "2"),
    ]
    assert store.get("tiny") == second.path  # latest: the highest number
    assert store.get("tiny", "1") == first.path
    assert_same_outputs(store.load("tiny", "1"), tiny_model)
    assert_same_outputs(store.load("tiny"), other_model)

    assert store.delete("tiny", "2") == ["2"]
    assert store.get("tiny") == first.path
    assert sorted(store.delete("tiny")) == ["1", "best"]
    assert store.list() == [] and not (store.root / "tiny").exists()
    with pytest.raises(ModelNotFoundError, match="'tiny': not in the store"):
        store.get("tiny")


def test_versions_sort_numerically(store: ModelStore, tiny_model: MultimodalVAE) -> None:
    for version in ["2", "10", "1"]:
        store.save(tiny_model, "m", version=version)
    assert store.versions("m") == ["1", "2", "10"]
    assert store.save(tiny_model, "m").version == "11"
    assert store.get("m").name == "11"


def test_versions_are_immutable(store: ModelStore, tiny_model: MultimodalVAE) -> None:
    store.save(tiny_model, "m", version="1")
    with pytest.raises(ModelExistsError, match="version '1' already exists"):
        store.save(tiny_model, "m", version="1")
    assert visible(store.root)[:2] == ["m", "m/1"]


def test_missing_versions_and_models(store: ModelStore, tiny_model: MultimodalVAE) -> None:
    store.save(tiny_model, "m")
    with pytest.raises(ModelNotFoundError, match=r"no version '7'; have \['1'\]"):
        store.get("m", "7")
    with pytest.raises(ModelNotFoundError):
        store.delete("absent")
    assert isinstance(ModelNotFoundError("x"), FileNotFoundError)


def test_failed_save_leaves_nothing_visible(
    store: ModelStore, tiny_model: MultimodalVAE, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(tiny_model, "m")
    before = visible(store.root)

    def crash(directory: Path, training_info: object = None) -> None:
        (Path(directory) / "config.json").write_text("{}")  # half a model...
        raise OSError("disk full")  # ...then the write fails

    monkeypatch.setattr(tiny_model, "save_pretrained", crash)
    with pytest.raises(OSError, match="disk full"):
        store.save(tiny_model, "m")
    with pytest.raises(OSError, match="disk full"):
        store.save(tiny_model, "fresh")
    assert visible(store.root) == before
    assert [p.name for p in store.root.iterdir()] == ["m"]  # temporary folder removed too
    assert [(m.name, m.version) for m in store.list()] == [("m", "1")]


def test_crash_leftovers_are_invisible_and_cleanable(
    store: ModelStore, tiny_model: MultimodalVAE
) -> None:
    """A killed writer leaves its hidden temporary folder behind; readers never see it."""
    stored = store.save(tiny_model, "m")
    leftover = store.root / ".tmp-deadbeef"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")
    assert [(m.name, m.version) for m in store.list()] == [("m", "1")]
    assert store.names() == ["m"]
    assert store.clean_temporary() == 1
    assert not leftover.exists() and stored.path.exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "/tmp/abs", "..", ".tmp-x", "", "a\\b"])
def test_names_never_escape_the_store(
    store: ModelStore, tiny_model: MultimodalVAE, tmp_path: Path, name: str
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InvalidModelIdError):
        store.save(tiny_model, name)
    with pytest.raises(InvalidModelIdError):
        store.save(tiny_model, "ok", version=name)
    with pytest.raises(InvalidModelIdError):
        store.get(name)
    with pytest.raises(InvalidModelIdError):
        store.delete(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written anywhere


def test_add_folder_copies_only_model_files(
    store: ModelStore, sampler_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "src"
    shutil.copytree(sampler_model_dir, folder)
    (folder / "optimizer.pt").write_bytes(b"pickle")
    (folder / "notes.txt").write_text("not part of a model")
    stored = store.add_folder(folder, "copied")
    files = sorted(p.relative_to(stored.path).as_posix() for p in stored.path.rglob("*"))
    assert files == [
        "README.md",
        "config.json",
        "model.safetensors",
        "sampler",
        "sampler/config.json",
        "sampler/sampler.safetensors",
    ]
    assert store.load("copied").sampler is not None


def test_add_folder_refuses_broken_models(store: ModelStore, tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelFormatError, match="refusing to unpickle"):
        store.add_folder(tmp_path / "broken", "broken")
    assert store.list() == []


def test_import_from_hub_records_the_source(
    store: ModelStore,
    hub_server: HubServer,
    new_repo: tuple[str, GitRepo],
    tiny_model: MultimodalVAE,
    tiny_model_dir: Path,
    hf_cache: Path,
) -> None:
    repo_id, repo = new_repo
    sha = repo.commit(tiny_model_dir)
    opts = {"endpoint": hub_server.endpoint, "cache_dir": hf_cache}
    stored = store.import_from_hub(repo_id, "main", **opts)
    assert stored.name == repo_id.split("/")[1] and stored.version == "1"
    assert stored.source == {"repo_id": repo_id, "revision": "main", "sha": sha}
    assert json.loads((stored.path / "source.json").read_text())["sha"] == sha
    again = store.import_from_hub(repo_id, sha, name=stored.name, **opts)
    assert again.path == stored.path  # the same commit is not stored twice
    model = store.load(stored.name)
    assert model.source["sha"] == sha
    assert_same_outputs(model, tiny_model)


def test_cli_models_lists_the_store(
    store: ModelStore, tiny_model: MultimodalVAE, capsys: pytest.CaptureFixture[str]
) -> None:
    store.save(tiny_model, "tiny")
    parser = argparse.ArgumentParser(prog="mmvae")
    register_models(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", "--json", "--store", str(store.root)])
    assert args.func(args) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["version"], row["model_type"], row["source"]) == (
        "tiny",
        "1",
        "mvae",
        None,
    )
    args = parser.parse_args(["models", "--store", str(store.root)])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "TYPE", "CREATED", "SOURCE"]
    assert lines[1].split()[:3] == ["tiny", "1", "mvae"] and lines[1].endswith("local")


def test_paths_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("MMVAE_DATA_DIR", "MMVAE_STORE_DIR", "HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert data_dir() == Path("data") and store_dir() == Path("data/models")
    assert hub_cache_dir() == Path("data/hub")
    monkeypatch.setenv("MMVAE_DATA_DIR", str(tmp_path))
    assert store_dir() == tmp_path / "models" and ModelStore().root == tmp_path / "models"
    monkeypatch.setenv("MMVAE_STORE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert store_dir() == tmp_path / "s" and hub_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == tmp_path / "c"
