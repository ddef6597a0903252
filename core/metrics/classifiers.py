"""Trained classifiers for coherence, as the papers compute it: one network per modality that
predicts the class from that modality, saved as a folder — `classifier.json` (modality, shape,
classes, the network spec, how it was trained and its test accuracy) and `model.safetensors` —
and rebuilt from registered network code (core/nn), never unpickled.

    mmvae classifier train --dataset polymnist:/data/PolyMNIST --output classifiers/
    mmvae evaluate MODEL --dataset polymnist:/data/PolyMNIST --classifiers classifiers/
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import Dataset

from core.nn import build_network, validate_network_spec

SPEC_FILE, WEIGHTS_FILE = "classifier.json", "model.safetensors"
DEFAULT_NETWORK = {"kind": "mlp", "hidden": [256, 256]}


class ClassifierError(ValueError):
    """A classifier folder is missing, malformed, or does not fit the modality it is used on."""


class TrainedClassifier(nn.Module):
    """A network mapping one modality's samples [N, *shape] to class scores [N, classes]."""

    def __init__(self, modality: str, shape: list[int], classes: int, network: dict) -> None:
        super().__init__()
        self.modality, self.shape, self.classes = modality, list(shape), classes
        self.network_spec = validate_network_spec(network)
        self.net = build_network(self.network_spec, tuple(shape), (classes,))

    def forward(self, x: Tensor) -> Tensor:
        if list(x.shape[1:]) != self.shape:
            raise ClassifierError(
                f"{self.modality}: the classifier takes samples of shape {self.shape}, "
                f"got {list(x.shape[1:])}"
            )
        return self.net(x)


def _observing(dataset: Dataset, modality: str) -> Tensor:
    if dataset.labels is None:
        raise ClassifierError("labels: the dataset has no labels to train or score a classifier")
    return dataset.masks[modality].nonzero().squeeze(1)


def train_classifier(
    dataset: Dataset,
    modality: str,
    network: dict | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> TrainedClassifier:
    """Cross-entropy against the labels, on the samples that observe `modality`, batch by batch
    (a dataset read row by row is never loaded whole)."""
    rows = _observing(dataset, modality)
    torch.manual_seed(seed)
    shape = list(dataset.shapes[modality])
    classes = int(dataset.labels.max()) + 1
    classifier = TrainedClassifier(modality, shape, classes, network or DEFAULT_NETWORK)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    classifier.train()
    for _ in range(epochs):
        for chunk in rows[torch.randperm(len(rows), generator=generator)].split(batch_size):
            batch = dataset.batch(chunk)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(classifier(batch.data[modality]), batch.labels)
            loss.backward()
            optimizer.step()
    return classifier.eval()


@torch.no_grad()
def accuracy_on(classifier: TrainedClassifier, dataset: Dataset, batch_size: int = 512) -> float:
    """Accuracy on the samples of `dataset` that observe the classifier's modality."""
    rows = _observing(dataset, classifier.modality)
    right = 0
    for chunk in rows.split(batch_size):
        batch = dataset.batch(chunk)
        right += int((classifier(batch.data[classifier.modality]).argmax(-1) == batch.labels).sum())
    return right / max(len(rows), 1)


def save_classifier(
    classifier: TrainedClassifier, folder: str | os.PathLike, info: dict[str, Any]
) -> Path:
    """`folder`/classifier.json + model.safetensors; `info` (dataset, accuracy...) kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"modality": classifier.modality, "shape": classifier.shape,
            "classes": classifier.classes, "network": classifier.network_spec, **info}  # fmt: skip
    save_file(
        {k: v.contiguous() for k, v in classifier.state_dict().items()}, folder / WEIGHTS_FILE
    )
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    return folder


def load_classifier(
    folder: str | os.PathLike, endpoint: str | None = None, cache_dir: str | None = None
) -> TrainedClassifier:
    """A classifier saved by `save_classifier` (weights as safetensors only): a local folder, or
    `hf://<repo_id>@<commit sha>/<folder in the repo>` (core/hub/files.py; `endpoint`: a Hub
    server other than HF_ENDPOINT's)."""
    if str(folder).startswith("hf://"):
        from core.hub.files import hub_files

        folder = hub_files(str(folder), [SPEC_FILE, WEIGHTS_FILE], endpoint, cache_dir)
    folder = Path(folder)
    if not (folder / SPEC_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ClassifierError(f"{folder.name}: needs {SPEC_FILE} and {WEIGHTS_FILE}")
    spec = json.loads((folder / SPEC_FILE).read_text())
    try:
        classifier = TrainedClassifier(
            spec["modality"], spec["shape"], spec["classes"], spec["network"]
        )
    except KeyError as missing:
        raise ClassifierError(f"{SPEC_FILE}: missing {missing}") from None
    classifier.load_state_dict(load_file(folder / WEIGHTS_FILE))
    return classifier.eval()


def load_classifiers(root: str | os.PathLike) -> dict[str, TrainedClassifier]:
    """Every classifier in the subfolders of `root`, by the modality it classifies."""
    root = Path(root)
    found = [load_classifier(p) for p in sorted(root.iterdir()) if (p / SPEC_FILE).is_file()]
    if not found:
        raise ClassifierError(f"{root}: no classifier folders ({SPEC_FILE} + {WEIGHTS_FILE})")
    return {c.modality: c for c in found}
