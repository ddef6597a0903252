"""Pulling from and pushing to a Hugging Face Hub, without internet.

Pulls run the real huggingface_hub client against olah on loopback, serving git repositories built
here, so branches, tags and shas are real. Pushes run the real client against a recorded HTTP
exchange (an httpx2 mock transport installed with `huggingface_hub.set_client_factory`).
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml
from huggingface_hub import close_session, constants, set_client_factory
from huggingface_hub.utils._http import default_client_factory

from core.cli.hub import register_pull, register_push
from core.hub import (
    HubError,
    HubNotFoundError,
    InvalidModelIdError,
    UnsafeModelError,
    resolve_revision,
)
from core.models import MultimodalVAE
from core.models.pretrained import load_from_hub
from core.models.pretrained import push as push_to_hub
from core.store import ModelStore
from tests.core.conftest import TRAINING_INFO, assert_same_outputs
from tests.core.hub_server import GitRepo, HubServer, Listener, RecordedHub

BAD_IDS = ["../x", "a--b", "x.git", "a" * 97, "a/b/c", "a b", "", "org/..", "/abs", "-x"]
SHA = "0123456789abcdef0123456789abcdef01234567"


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# ---- pulls ----------------------------------------------------------------------------------
def test_pull_at_branch_tag_and_sha(
    new_repo: tuple[str, GitRepo],
    hub_server: HubServer,
    hf_cache: Path,
    tiny_model: MultimodalVAE,
    tiny_model_dir: Path,
    other_model: MultimodalVAE,
    other_model_dir: Path,
) -> None:
    repo_id, repo = new_repo
    first = repo.commit(tiny_model_dir, "first model")
    repo.tag("v1")
    second = repo.commit(other_model_dir, "second model")
    opts = {"endpoint": hub_server.endpoint, "cache_dir": hf_cache}

    at_main = load_from_hub(repo_id, "main", **opts)
    assert at_main.source == {"repo_id": repo_id, "revision": "main", "sha": second}
    assert_same_outputs(at_main, other_model)

    at_tag = load_from_hub(repo_id, "v1", **opts)
    assert at_tag.source["sha"] == first
    assert_same_outputs(at_tag, tiny_model)

    at_sha = load_from_hub(repo_id, first, **opts)
    assert at_sha.source == {"repo_id": repo_id, "revision": first, "sha": first}
    assert_same_outputs(at_sha, tiny_model)
    assert resolve_revision(repo_id, "v1", endpoint=hub_server.endpoint) == first
    assert resolve_revision(repo_id, endpoint=hub_server.endpoint) == second


def test_from_pretrained_routes_repo_ids_to_the_hub(
    new_repo: tuple[str, GitRepo],
    hub_server: HubServer,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`from_pretrained("org/name")` pulls; a same-named local folder is ignored."""
    repo_id, repo = new_repo
    sha = repo.commit(tiny_model_dir)
    (tmp_path / repo_id).mkdir(parents=True)  # a decoy folder named like the repo id
    monkeypatch.chdir(tmp_path)
    opts = {"endpoint": hub_server.endpoint, "cache_dir": tmp_path / "c"}
    model = MultimodalVAE.from_pretrained(repo_id, revision="main", **opts)
    assert model.source["sha"] == sha


def test_only_safe_files_are_downloaded(
    new_repo: tuple[str, GitRepo], hub_server: HubServer, hf_cache: Path, sampler_model_dir: Path
) -> None:
    """The model files and the sampler travel; pickles and anything else stay on the server."""
    repo_id, repo = new_repo
    files = folder_files(sampler_model_dir)
    marker = hf_cache.parent / "unpickled"
    files["pytorch_model.bin"] = pickle.dumps(_Exploit(str(marker)))
    files["sampler/extra.pkl"] = pickle.dumps(_Exploit(str(marker)))
    files["notes.txt"] = b"not part of a model"
    repo.commit(files)
    model = load_from_hub(repo_id, endpoint=hub_server.endpoint, cache_dir=hf_cache)
    snapshot = next((hf_cache / f"models--{repo_id.replace('/', '--')}" / "snapshots").iterdir())
    got = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    assert got == sorted(folder_files(sampler_model_dir))
    assert "sampler/sampler.safetensors" in got
    assert model.source["sha"] == snapshot.name
    assert not marker.exists()
    original = MultimodalVAE.from_pretrained(sampler_model_dir)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    mine = original.sample(4, sampler=original.sampler, generator=g1)
    theirs = model.sample(4, sampler=model.sampler, generator=g2)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


class _Exploit:
    """Unpickling this creates a file: proof that no pickle was ever loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def test_offline_uses_only_the_cache(
    new_repo: tuple[str, GitRepo],
    hub_server: HubServer,
    hf_cache: Path,
    tiny_model: MultimodalVAE,
    tiny_model_dir: Path,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo_id, repo = new_repo
    sha = repo.commit(tiny_model_dir)
    repo.tag("v1")
    load_from_hub(repo_id, "main", endpoint=hub_server.endpoint, cache_dir=hf_cache)

    # HF_HUB_OFFLINE=1 is read by huggingface_hub at import; patch the flag it set.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    dead = {"endpoint": listener.endpoint, "cache_dir": hf_cache}
    for revision in ("main", sha, None):
        model = load_from_hub(repo_id, revision, **dead)
        assert model.source["sha"] == sha
        assert_same_outputs(model, tiny_model)
    with pytest.raises(HubNotFoundError, match=r"@v1: not in the Hub cache .*offline"):
        load_from_hub(repo_id, "v1", **dead)  # a tag never pulled: not cached
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert load_from_hub(repo_id, sha, offline=True, **dead).source["sha"] == sha
    assert not listener.connected()


def test_pickle_only_repo_is_refused(
    new_repo: tuple[str, GitRepo], hub_server: HubServer, hf_cache: Path, tiny_model_dir: Path
) -> None:
    repo_id, repo = new_repo
    marker = hf_cache.parent / "unpickled"
    repo.commit(
        {
            "config.json": (tiny_model_dir / "config.json").read_bytes(),
            "pytorch_model.bin": pickle.dumps(_Exploit(str(marker))),
        }
    )
    with pytest.raises(UnsafeModelError, match=r"only pickle files \['pytorch_model.bin'\]"):
        load_from_hub(repo_id, endpoint=hub_server.endpoint, cache_dir=hf_cache)
    assert not marker.exists()
    assert not list(hf_cache.rglob("*.bin"))


def test_unknown_model_type_is_refused_before_the_weights_download(
    new_repo: tuple[str, GitRepo], hub_server: HubServer, hf_cache: Path, tiny_model_dir: Path
) -> None:
    repo_id, repo = new_repo
    files = folder_files(tiny_model_dir)
    config = json.loads(files["config.json"])
    config["model_type"] = "evil"
    files["config.json"] = json.dumps(config).encode()
    repo.commit(files)
    with pytest.raises(UnsafeModelError, match=rf"{repo_id}@main: refused: .*unknown model 'evil'"):
        load_from_hub(repo_id, endpoint=hub_server.endpoint, cache_dir=hf_cache)
    assert not list(hf_cache.rglob("model.safetensors"))


def test_corrupted_safetensors_is_refused(
    new_repo: tuple[str, GitRepo], hub_server: HubServer, hf_cache: Path, tiny_model_dir: Path
) -> None:
    repo_id, repo = new_repo
    files = folder_files(tiny_model_dir)
    garbled = bytearray(files["model.safetensors"])
    garbled[:16] = b"\xff" * 16  # the header length becomes absurd
    files["model.safetensors"] = bytes(garbled)
    sha = repo.commit(files)
    with pytest.raises(HubError, match=rf"commit {sha}\).*corrupted safetensors"):
        load_from_hub(repo_id, endpoint=hub_server.endpoint, cache_dir=hf_cache)


def test_missing_revision_is_a_clear_error(
    new_repo: tuple[str, GitRepo], hub_server: HubServer, hf_cache: Path, tiny_model_dir: Path
) -> None:
    repo_id, repo = new_repo
    repo.commit(tiny_model_dir)
    opts = {"endpoint": hub_server.endpoint, "cache_dir": hf_cache}
    with pytest.raises(HubNotFoundError, match=rf"{repo_id}@nope: revision 'nope' does not exist"):
        load_from_hub(repo_id, "nope", **opts)
    # The Hub answers an unknown sha with 404 (RevisionNotFound); olah with 500: either way an
    # error naming the repo and the sha.
    with pytest.raises(HubError, match=rf"{repo_id}@{SHA}: "):
        load_from_hub(repo_id, SHA, **opts)
    close_session()  # olah drops the connection after its 500: don't reuse it in the next test
    assert not list(hf_cache.rglob("model.safetensors"))


def test_missing_repo_is_a_clear_error(hub_server: HubServer, hf_cache: Path) -> None:
    with pytest.raises(HubNotFoundError, match="repository 'org/absent' not found"):
        load_from_hub("org/absent", endpoint=hub_server.endpoint, cache_dir=hf_cache)


@pytest.mark.parametrize("repo_id", BAD_IDS)
def test_invalid_ids_fail_before_any_request(
    repo_id: str, listener: Listener, hf_cache: Path, tiny_model: MultimodalVAE, tmp_path: Path
) -> None:
    with pytest.raises(InvalidModelIdError):
        load_from_hub(repo_id, endpoint=listener.endpoint, cache_dir=hf_cache)
    with pytest.raises(InvalidModelIdError):
        push_to_hub(tiny_model, repo_id, endpoint=listener.endpoint, token="hf_x")
    with pytest.raises(InvalidModelIdError):
        ModelStore(tmp_path / "store").import_from_hub(
            repo_id, endpoint=listener.endpoint, cache_dir=hf_cache
        )
    assert not listener.connected()
    assert not hf_cache.exists()
    assert not (tmp_path / "store").exists()


def test_hub_errors_are_value_errors() -> None:
    assert issubclass(HubError, ValueError) and issubclass(InvalidModelIdError, ValueError)


# ---- pushes (recorded HTTP exchange with the real client) -----------------------------------
def test_push_model_sends_the_model_files_and_message(
    recorded_hub: RecordedHub, tiny_model: MultimodalVAE, tmp_path: Path
) -> None:
    result = push_to_hub(
        tiny_model,
        "org/shared",
        revision="dev",
        token="hf_secret",
        private=True,
        commit_message="Add tiny MVAE",
        endpoint="http://hub.test",
        training_info=TRAINING_INFO,
    )
    assert result.sha == recorded_hub.commit_sha and result.revision == "dev"
    assert result.url.endswith(recorded_hub.commit_sha)
    calls = [(r.method, r.url.path) for r in recorded_hub.to("hub.test")]
    assert calls[0] == ("POST", "/api/repos/create")
    assert ("POST", "/api/models/org/shared/branch/dev") in calls
    assert calls[-1] == ("POST", "/api/models/org/shared/commit/dev")
    create = json.loads(recorded_hub.to("hub.test")[0].content)
    assert create["name"] == "shared" and create["organization"] == "org"
    assert create.get("private") is True or create.get("visibility") == "private"
    assert all(
        r.headers["authorization"] == "Bearer hf_secret" for r in recorded_hub.to("hub.test")
    )

    header, files = recorded_hub.commit()
    assert header["summary"] == "Add tiny MVAE"
    expected = folder_files(tiny_model.save_pretrained(tmp_path / "local", TRAINING_INFO))
    assert files.keys() == {"config.json", "model.safetensors", "README.md", "training.json"}
    weights, expected_weights = files.pop("model.safetensors"), expected.pop("model.safetensors")
    assert files == {k: v for k, v in expected.items() if k != "model.safetensors"}
    # safetensors writes its metadata map in no fixed order: compare the tensors, not the bytes
    sent, local = safetensors.torch.load(weights), safetensors.torch.load(expected_weights)
    assert sent.keys() == local.keys() and all(torch.equal(sent[k], local[k]) for k in sent)

    card = yaml.safe_load(files["README.md"].decode().split("---")[1])
    assert card["library_name"] == "mmvae-service"
    assert {"mvae", "multimodal-vae"} <= set(card["tags"])
    assert card["datasets"] == ["digits"] and card["metrics"] == ["elbo", "loss"]


def test_push_folder_leaves_pickles_and_extras_behind(
    recorded_hub: RecordedHub, sampler_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    for name, data in folder_files(sampler_model_dir).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "optimizer.pt").write_bytes(b"pickle")
    (folder / "notes.txt").write_text("private notes")
    push_to_hub(folder, "org/shared", token="hf_x", endpoint="http://hub.test")
    header, files = recorded_hub.commit()
    assert header["summary"] == "Upload mvae model (mmvae-service)"
    assert sorted(files) == sorted(folder_files(sampler_model_dir))
    assert "sampler/sampler.safetensors" in files and "sampler/config.json" in files
    assert not any("/branch/" in r.url.path for r in recorded_hub.requests)


def test_push_refuses_a_folder_with_a_pickled_sampler(
    recorded_hub: RecordedHub, sampler_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    for name, data in folder_files(sampler_model_dir).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "sampler" / "state.pkl").write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"unexpected files \['state.pkl'\]"):
        push_to_hub(folder, "org/shared", token="hf_x", endpoint="http://hub.test")
    assert not recorded_hub.requests


def test_push_refuses_broken_folders_and_sha_revisions(
    recorded_hub: RecordedHub, tiny_model: MultimodalVAE, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="no such model folder"):
        push_to_hub(tmp_path / "missing", "org/shared", endpoint="http://hub.test")
    with pytest.raises(HubError, match="not a commit sha"):
        push_to_hub(tiny_model, "org/shared", revision=SHA, endpoint="http://hub.test")
    assert not recorded_hub.to("hub.test")


def test_push_then_pull_round_trip(
    recorded_hub: RecordedHub,
    tiny_model: MultimodalVAE,
    hub_server: HubServer,
    new_repo: tuple[str, GitRepo],
    hf_cache: Path,
) -> None:
    """What a push sends, committed to a served repo, pulls back into the same model."""
    push_to_hub(tiny_model, "org/shared", endpoint="http://hub.test", token="hf_x")
    _, files = recorded_hub.commit()
    set_client_factory(default_client_factory)
    close_session()
    repo_id, repo = new_repo
    sha = repo.commit(files)
    pulled = load_from_hub(repo_id, sha, endpoint=hub_server.endpoint, cache_dir=hf_cache)
    assert_same_outputs(pulled, tiny_model)


# ---- CLI ------------------------------------------------------------------------------------
def run_cli(register, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmvae")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_push_and_pull(
    recorded_hub: RecordedHub,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    argv = ["push", str(tiny_model_dir), "org/shared", "--revision", "exp", "-m", "cli push"]
    assert run_cli(register_push, [*argv, "--endpoint", "http://hub.test"]) == 0
    assert recorded_hub.commit_sha in capsys.readouterr().out
    assert recorded_hub.commit()[0]["summary"] == "cli push"
    assert recorded_hub.to("hub.test")[-1].headers["authorization"] == "Bearer hf_env"


def test_cli_pull_into_the_store(
    new_repo: tuple[str, GitRepo],
    hub_server: HubServer,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo_id, repo = new_repo
    sha = repo.commit(tiny_model_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "store"
    argv = ["pull", repo_id, "--revision", "main", "--name", "tiny", "--store", str(store)]
    assert run_cli(register_pull, [*argv, "--endpoint", hub_server.endpoint]) == 0
    assert f"commit {sha}" in capsys.readouterr().out
    (stored,) = ModelStore(store).list()
    assert (stored.name, stored.version, stored.source["sha"]) == ("tiny", "1", sha)
