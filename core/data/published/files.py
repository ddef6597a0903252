"""Finding a publisher's file under a dataset root, in the layouts users end up with."""

from __future__ import annotations

from pathlib import Path

from core.data.dataset import DatasetError


def find_file(root: Path, names: list[str], subfolders: tuple[str, ...] = ("",)) -> Path:
    """The first of `names` (e.g. with and without `.gz`) in `root` or one of its `subfolders`."""
    for folder in subfolders:
        for name in names:
            path = root / folder / name
            if path.is_file():
                return path
    where = ", ".join(str(root / f) for f in subfolders)
    raise DatasetError(
        f"{names[0]}: not found in {where} (see the loader's docstring for where to get it)"
    )
