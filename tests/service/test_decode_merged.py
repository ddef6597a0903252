"""Decoding several requests' inputs at once: the same Batch as decoding each alone, None for
anything outside the common form, and used by the inference thread when every request allows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from service.codecs import decode_inputs, decode_merged
from service.inference import Work, merge, run
from service.schemas import TensorPayload
from tests.service.conftest import tiny_model

SPECS = tiny_model().config.modalities  # image [1, 8, 8], label: 10 classes, vec [3]


def _alone(requests: list[dict[str, Any]]) -> Any:
    return merge([decode_inputs(r, SPECS, 256, 10_000) for r in requests])


def _rows(requests: list[dict[str, Any]]) -> list[int]:
    return [len(next(iter(r.values()))) for r in requests]


def test_same_batch_as_decoding_each_alone() -> None:
    requests = [{"label": [1]}, {"label": [2, 9, 0]}, {"label": [4]}]
    merged = decode_merged(requests, _rows(requests), SPECS)
    alone = _alone(requests)
    assert merged is not None and merged.size == 5
    for name in ("image", "label", "vec"):
        assert merged.data[name].dtype == alone.data[name].dtype
        assert torch.equal(merged.data[name], alone.data[name]), name
        assert torch.equal(merged.masks[name], alone.masks[name]), name
    assert merged.data["label"].argmax(-1).tolist() == [1, 2, 9, 0, 4]


@pytest.mark.parametrize(
    "odd",
    [
        {"label": [10]},  # out of range
        {"label": [-1]},
        {"label": [True]},  # a boolean is not a class index
        {"label": [3.0]},
        {"label": [None]},  # a missing sample
        {"label": [[0.5] * 10]},  # probabilities
        {"vec": [[1.0, 2.0, 3.0]]},  # a modality that is not categorical
        {"label": TensorPayload(shape=[1, 10], data=[0.1] * 10)},
        {"colour": [1]},  # unknown modality
        {},
        {"label": [1, 2]},  # more samples than counted
    ],
    ids=repr,
)
def test_anything_else_is_left_to_decoding_alone(odd: dict[str, Any]) -> None:
    assert decode_merged([{"label": [1]}, odd], [1, 1], SPECS) is None


def test_the_inference_thread_decodes_together_when_every_request_allows() -> None:
    model = tiny_model()
    params = {"targets": ["vec"], "n_samples": 1, "mean_latent": True}
    decoded_alone: list[int] = []

    def work(classes: list[int], inputs: bool = True) -> Work:
        def decode() -> Any:
            decoded_alone.append(len(classes))
            return decode_inputs({"label": classes}, SPECS, 256, 10_000)

        given = {"label": classes} if inputs else None
        return Work(model, params, len(classes), decode=decode, inputs=given)

    together = run("generate", [work([1]), work([2, 3])])
    assert decoded_alone == []
    each = run("generate", [work([1], inputs=False), work([2, 3])])
    assert decoded_alone == [1, 2]  # one request without inputs: every request decoded alone
    for a, b in zip(together, each, strict=True):
        assert torch.allclose(a["vec"], b["vec"], atol=1e-6)
