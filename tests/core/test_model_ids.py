"""Hub repo ids, store names and revisions: the Hub's naming rules, each refusal naming its rule."""

from __future__ import annotations

import pytest

from core.hub.ids import (
    InvalidModelIdError,
    is_commit_sha,
    validate_repo_id,
    validate_revision,
    validate_store_name,
)
from core.persistence import is_local_reference

GOOD_IDS = ["gpt2", "org/name", "Org-1/my_model.v2", "a/b", "x" * 96, f"{'n' * 96}/{'m' * 96}"]
BAD_IDS = {
    "": "empty",
    "../x": "may not start or end with '-' or '.'",
    "a--b": "may not contain '--' or '..'",
    "a..b": "may not contain '--' or '..'",
    "org/x.git": "may not end with '.git'",
    "x.GIT": "may not end with '.git'",
    "a" * 97: "97 characters (at most 96)",
    f"{'o' * 97}/name": "namespace has 97 characters",
    "a/b/c": "at most one '/'",
    "a b": "letters, digits, '-', '_' and '.' (found ' ')",
    "org/na$me": "(found '$')",
    "/abs": "namespace is empty",
    "org/": "name is empty",
    "-x": "may not start or end",
    "x_": None,  # valid: underscores may end a name
    "caf\u00e9": "found '\u00e9'",
    "a\\b": "found '\\\\'",
}


@pytest.mark.parametrize("repo_id", GOOD_IDS)
def test_valid_repo_ids(repo_id: str) -> None:
    assert validate_repo_id(repo_id) == repo_id


@pytest.mark.parametrize(("repo_id", "rule"), BAD_IDS.items())
def test_invalid_repo_ids_name_the_rule(repo_id: str, rule: str | None) -> None:
    if rule is None:
        assert validate_repo_id(repo_id) == repo_id
        return
    with pytest.raises(InvalidModelIdError) as err:
        validate_repo_id(repo_id)
    assert rule in str(err.value)
    assert isinstance(err.value, ValueError)


def test_non_string_ids_are_refused() -> None:
    with pytest.raises(InvalidModelIdError, match="expected a string"):
        validate_repo_id(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["tiny", "mvae-digits", "v1.2", "A_b"])
def test_valid_store_names(name: str) -> None:
    assert validate_store_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "/abs", "a\\b", ".hidden", "x.git", "a--b", "~", "a b"]
)
def test_store_names_never_form_a_path(name: str) -> None:
    with pytest.raises(InvalidModelIdError):
        validate_store_name(name)


def test_store_name_errors_say_what_was_checked() -> None:
    with pytest.raises(InvalidModelIdError, match=r"store version '\.\./1'"):
        validate_store_name("../1", "version")


@pytest.mark.parametrize("revision", [None, "main", "v1.0", "refs/pr/1", "a" * 40])
def test_valid_revisions(revision: str | None) -> None:
    assert validate_revision(revision) == revision


@pytest.mark.parametrize("revision", ["", "a b", "x\n", "a..b", "r" * 256])
def test_invalid_revisions(revision: str) -> None:
    with pytest.raises(InvalidModelIdError, match="revision"):
        validate_revision(revision)


def test_commit_sha() -> None:
    assert is_commit_sha("0123456789abcdef0123456789abcdef01234567")
    assert not is_commit_sha("main") and not is_commit_sha(None) and not is_commit_sha("A" * 40)


@pytest.mark.parametrize("repo_id", GOOD_IDS)
def test_hub_ids_are_never_local_paths(repo_id: str) -> None:
    assert not is_local_reference(repo_id)
