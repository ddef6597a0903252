"""`mmvae push`, `mmvae pull` and `mmvae models`: share models on the Hub, keep them in the store.

Three plugins (entry points in the `mmvae.commands` group), one per sub-command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def register_push(subparsers: argparse._SubParsersAction) -> None:
    """`mmvae push MODEL_DIR org/name [--revision BRANCH] [--private] [--message M] [--token T]`."""
    p = subparsers.add_parser(
        "push",
        help="upload a saved model folder to the Hugging Face Hub",
        description="Upload a saved model folder (config.json, model.safetensors, README.md, "
        "training.json, sampler/) to a Hub repo as one commit; prints the commit sha to pin.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by save_pretrained")
    p.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, e.g. org/name")
    p.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--message", "-m", metavar="M", help="commit message")
    _add_hub_access(p)
    p.set_defaults(func=_push)


def register_pull(subparsers: argparse._SubParsersAction) -> None:
    """`mmvae pull org/name --revision REV [--name NAME]`: into the local store."""
    p = subparsers.add_parser(
        "pull",
        help="download a model from the Hugging Face Hub into the local store",
        description="Pull a model at a branch, tag or commit sha into the local model store; "
        "prints the resolved commit sha. Pickled weights are never downloaded or loaded.",
    )
    p.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, e.g. org/name")
    p.add_argument("--revision", metavar="REV", help="branch, tag or commit sha (default: main)")
    p.add_argument("--name", help="store name (default: the repo's name)")
    _add_hub_access(p)
    p.add_argument("--store", metavar="DIR", help="store directory (default: MMVAE_STORE_DIR)")
    p.set_defaults(func=_pull)


def _add_hub_access(p: argparse.ArgumentParser) -> None:
    """--token and --endpoint, as push and pull share them."""
    p.add_argument("--token", metavar="T", help="Hub token (default: HF_TOKEN or the stored login)")
    p.add_argument("--endpoint", metavar="URL", help="Hub endpoint (default: HF_ENDPOINT)")


def register_models(subparsers: argparse._SubParsersAction) -> None:
    """`mmvae models [--json]`: what the local store holds."""
    p = subparsers.add_parser("models", help="list the models in the local store")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--store", metavar="DIR", help="store directory (default: MMVAE_STORE_DIR)")
    p.set_defaults(func=_models)


def _push(args: argparse.Namespace) -> int:
    from core.models.pretrained import push

    result = push(
        args.model_dir,
        args.repo_id,
        revision=args.revision,
        token=args.token or os.environ.get("HF_TOKEN") or None,
        private=args.private,
        commit_message=args.message,
        endpoint=args.endpoint,
    )
    print(f"pushed {result.repo_id}@{result.revision}: commit {result.sha}")
    print(result.url)
    return 0


def _pull(args: argparse.Namespace) -> int:
    from core.store import ModelStore

    store = ModelStore(args.store)
    stored = store.import_from_hub(
        args.repo_id,
        args.revision,
        name=args.name,
        endpoint=args.endpoint,
        token=args.token or None,
    )
    sha = (stored.source or {}).get("sha", "")
    print(f"pulled {args.repo_id}@{args.revision or 'main'} -> commit {sha}")
    print(f"stored as {stored.name}:{stored.version} at {stored.path}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from core.store import ModelStore

    models = ModelStore(args.store).list()
    if args.json:
        json.dump([m.to_dict() for m in models], sys.stdout, indent=2)
        print()
        return 0
    rows = [("NAME", "VERSION", "TYPE", "CREATED", "SOURCE")]
    for m in models:
        src = f"{m.source['repo_id']}@{m.source['sha'][:12]}" if m.source else "local"
        rows.append((m.name, m.version, m.model_type, m.created, src))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
