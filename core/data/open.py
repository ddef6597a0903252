"""One way to name a dataset wherever a person gives one (the CLI's `--dataset`): a built-in
name (`digits`), an `.npz` file, a folder of `.npy` arrays (core/data/ondisk.py), a manifest CSV
pointing at files (core/data/manifest.py), or a published benchmark as `<name>:<folder of its
files>` (`polymnist:/data/PolyMNIST`, core/data/published)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

# options that shape the training data only: a test split is always read whole
TRAIN_ONLY_OPTIONS = ("missing_ratio", "missing_probabilities", "keep_incomplete")


def published_reference(reference: str) -> tuple[str, str] | None:
    """(name, root) of a `<published name>:<root>` reference, else None."""
    from core.data.published import LOADERS

    name, _, root = reference.partition(":")
    return (name, root) if root and name in LOADERS else None


def open_dataset(reference: str, split: str = "train", **options: Any) -> Dataset:
    """The `split` of the dataset `reference` names (all of a file, or of a folder without that
    split); `options` go to a published loader."""
    from core.data.builtin import load_builtin
    from core.data.npz import load_npz
    from core.data.ondisk import ArrayFolder

    published = published_reference(reference)
    if published is not None:
        from core.data.published import load_published

        if split != "train":
            options = {k: v for k, v in options.items() if k not in TRAIN_ONLY_OPTIONS}
        return load_published(*published, split=split, **options)
    if options:
        raise ValueError(
            f"dataset_options: only published datasets take options, not {reference!r}"
        )
    path = Path(reference).expanduser()
    if path.suffix == ".csv":  # a manifest: its rows of `split` where it has a split column
        from core.data.manifest import load_manifest

        return load_manifest(path, split if has_split(reference, split) else None)
    if path.is_dir():  # its split where dataset.json names one, else all of it
        chosen = split if has_split(reference, split) else None
        return ArrayFolder(path, chosen, augment=split == "train")
    if reference.endswith(".npz") or path.is_file():
        return load_npz(path)  # a file is one split
    return load_builtin(reference, split)


def has_split(reference: str, split: str) -> bool:
    """Whether `reference` has a `split` of its own (files and split-less folders do not)."""
    if published_reference(reference) is not None:
        return True
    path = Path(reference).expanduser()
    if path.suffix == ".csv":
        from core.data.manifest import splits_of

        return split in splits_of(path)
    if path.is_dir():
        from core.data.ondisk import ArrayFolder

        return split in ArrayFolder(path).config.get("splits", {})
    return not path.is_file() and not reference.endswith(".npz")


def declared_specs(reference: str) -> list[dict] | None:
    """The modality specs a built-in or published dataset declares, without reading its data."""
    import copy

    from core.data.builtin import BUILTIN_DATASETS, builtin_modalities
    from core.data.published import SPECS

    if reference in BUILTIN_DATASETS:
        return builtin_modalities(reference)
    published = published_reference(reference)
    known = SPECS.get(published[0]) if published is not None else None
    return copy.deepcopy(known) if known is not None else None


def modality_specs(reference: str, dataset: Dataset) -> list[dict]:
    """The dataset's modality specs: declared (built-ins, published, dataset.json), else
    inferred from its values (all of an in-memory dataset, the first samples of one on disk)."""
    from core.data.builtin import infer_modalities

    declared = getattr(dataset, "modality_specs", lambda: None)() or declared_specs(reference)
    if declared:
        return with_input_transforms(declared, dataset)
    head = getattr(dataset, "head", None)
    return with_input_transforms(
        infer_modalities(head() if head is not None else dataset), dataset
    )


def with_input_transforms(specs: list[dict], dataset: Dataset) -> list[dict]:
    """`specs` where each modality that does not set `input_transforms` takes the scale and
    normalize steps of the dataset's transforms (core/data/transforms.serving_transforms), so a
    model trained on the dataset decodes the service's inputs as its training data were read."""
    from core.data import transforms as tf
    from core.data.kinds import modality_kind

    chains = getattr(dataset, "transforms", None) or {}
    sources = getattr(dataset, "arrays", None) or {}
    out = []
    for spec in specs:
        name = spec.get("name")
        if spec.get("input_transforms") is None and chains.get(name):
            likelihood = (spec.get("likelihood") or {}).get("kind", "normal")
            kind = modality_kind(spec.get("shape", []), likelihood, spec.get("kind"))
            dtype = getattr(sources.get(name), "dtype", None)
            derived = tf.serving_transforms(chains[name], kind, dtype)
            if derived:
                spec = {**spec, "input_transforms": derived}
        out.append(spec)
    return out
