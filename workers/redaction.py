"""Server paths out of what callers read: error messages and job records name `<data>`,
`<store>` or `<tmp>` instead of the deployment's absolute folders (they tell an attacker the
layout of the host and nothing to a legitimate caller, who addresses data by id)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any


def _roots(data_dir: Path, store_dir: Path) -> list[tuple[str, str]]:
    """(absolute folder, placeholder), longest first so a store inside data is named <store>."""
    pairs = {
        str(store_dir.resolve()): "<store>",
        str(data_dir.resolve()): "<data>",
        str(Path(tempfile.gettempdir()).resolve()): "<tmp>",
    }
    return sorted(pairs.items(), key=lambda p: len(p[0]), reverse=True)


def redact(text: str, data_dir: Path, store_dir: Path) -> str:
    """`text` with every server folder above replaced by its placeholder."""
    for folder, name in _roots(data_dir, store_dir):
        if folder != os.sep:
            text = re.sub(re.escape(folder) + r"(?=[/\\'\"\s:,)]|$)", name, text)
    return text


def redact_tree(value: Any, data_dir: Path, store_dir: Path) -> Any:
    """`value` (JSON-like: dicts, lists, strings) with `redact` applied to every string."""
    if isinstance(value, str):
        return redact(value, data_dir, store_dir)
    if isinstance(value, dict):
        return {k: redact_tree(v, data_dir, store_dir) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v, data_dir, store_dir) for v in value]
    return value
