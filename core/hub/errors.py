"""Errors raised by `core.hub`, and the translation of `huggingface_hub` errors into them.

Every message names the repo and the revision, so a service can return it to the caller as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


class HubError(ValueError):
    """A Hub pull or push failed, or what was pulled is refused; the message says why."""


class HubNotFoundError(HubError):
    """The repo, the revision or a file does not exist (or is not cached while offline)."""


class UnsafeModelError(HubError):
    """The repo holds only pickled weights (or an unknown model type): refused, never loaded."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP client huggingface_hub uses (httpx2, httpx, requests)."""
    errors: list[type[BaseException]] = [ConnectionError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def where(repo_id: str, revision: str | None) -> str:
    """`org/name@revision`, the way every message names what was asked for."""
    return f"{repo_id}@{revision or 'main'}"


@contextmanager
def hub_errors(repo_id: str, revision: str | None, *, offline: bool = False) -> Iterator[None]:
    """Re-raise huggingface_hub and connection errors as `HubError`s naming repo and revision."""
    at = where(repo_id, revision)
    try:
        yield
    except HubError:
        raise
    except OfflineModeIsEnabled as err:
        raise HubNotFoundError(
            f"{at}: not in the Hub cache and offline mode is on (HF_HUB_OFFLINE=1); "
            "pull it once while online, or pin a commit sha that is cached"
        ) from err
    except LocalEntryNotFoundError as err:
        reason = (
            "offline mode is on (HF_HUB_OFFLINE=1)"
            if offline
            else "the Hub could not be reached or the revision does not exist"
        )
        raise HubNotFoundError(f"{at}: not in the Hub cache and {reason}") from err
    except RevisionNotFoundError as err:
        raise HubNotFoundError(f"{at}: revision {revision!r} does not exist") from err
    except GatedRepoError as err:
        raise HubError(f"{at}: the repository is gated; accept its terms and pass a token") from err
    except RepositoryNotFoundError as err:
        raise HubNotFoundError(
            f"{at}: repository {repo_id!r} not found "
            "(or it is private and no valid token was given)"
        ) from err
    except EntryNotFoundError as err:
        raise HubNotFoundError(f"{at}: file not found in the repository ({err})") from err
    except HfHubHTTPError as err:
        raise HubError(f"{at}: Hub request failed: {str(err).splitlines()[0]}") from err
    except _transport_errors() as err:
        raise HubError(f"{at}: cannot reach the Hub ({type(err).__name__}: {err})") from err
