"""The `conv1d` kind: signals [C, T] and one-hot token sequences [L, V] both ways."""

from __future__ import annotations

import pytest
import torch

from core.models import build_model
from core.nn import NetworkError, build_network

SPEC = {"kind": "conv1d", "channels": [8, 16], "hidden": 16}
TEXT = {**SPEC, "layout": "channels_last", "embedding": 6}


@pytest.mark.parametrize("spec, shape", [(SPEC, (2, 32)), (SPEC, (1, 12)), (TEXT, (16, 10))])
def test_encoders_and_decoders_map_sequences_and_vectors(spec: dict, shape: tuple) -> None:
    encoder, decoder = build_network(spec, shape, (6,)), build_network(spec, (3,), shape)
    assert encoder(torch.rand(5, *shape)).shape == (5, 6)
    assert decoder(torch.rand(5, 3)).shape == (5, *shape)


def test_channels_last_is_the_transpose_of_channels_first() -> None:
    torch.manual_seed(0)
    last = build_network(TEXT, (16, 10), (4,))
    first = build_network({**TEXT, "layout": "channels_first"}, (10, 16), (4,))
    for mine, theirs in zip(first.parameters(), last.parameters(), strict=True):
        mine.data.copy_(theirs)
    x = torch.rand(3, 16, 10)
    assert torch.allclose(last(x), first(x.transpose(1, 2)))
    decoder_last = build_network(TEXT, (4,), (16, 10))
    decoder_first = build_network({**TEXT, "layout": "channels_first"}, (4,), (10, 16))
    for mine, theirs in zip(decoder_first.parameters(), decoder_last.parameters(), strict=True):
        mine.data.copy_(theirs)
    z = torch.rand(3, 4)
    assert torch.allclose(decoder_last(z), decoder_first(z).transpose(1, 2))


def test_the_embedding_maps_each_position_alone() -> None:
    torch.manual_seed(0)
    encoder = build_network(TEXT, (16, 10), (4,))
    embedding = encoder[1]
    assert embedding.kernel_size == (1,) and embedding.bias is None
    x = torch.zeros(1, 10, 16)
    x[0, 3, 5] = 1.0  # token 3 at position 5
    assert torch.allclose(embedding(x)[0, :, 5], embedding.weight[:, 3, 0])
    assert embedding(x)[0, :, 4].abs().sum() == 0


def test_sequences_the_network_cannot_connect_are_refused() -> None:
    with pytest.raises(NetworkError, match="length 30 must be divisible by 2\\^2"):
        build_network(SPEC, (2, 30), (4,))
    with pytest.raises(NetworkError, match="one side must be a sequence"):
        build_network(SPEC, (4,), (8,))


def test_a_text_modality_trains_and_generates_token_distributions() -> None:
    """Sentences of 8 tokens over 6 words whose first token is the label: an MVAE learns it."""
    torch.manual_seed(0)
    labels = torch.randint(3, (64,))
    tokens = torch.randint(6, (64, 8))
    tokens[:, 0] = labels
    text = torch.nn.functional.one_hot(tokens, 6).float()
    spec = {
        "kind": "conv1d",
        "channels": [16],
        "hidden": 32,
        "layout": "channels_last",
        "embedding": 8,
    }
    categorical = {"kind": "categorical", "likelihood": {"kind": "categorical"}}
    text_spec = {"name": "text", "shape": [8, 6], "encoder": spec, "decoder": spec, **categorical}
    label_spec = {"name": "label", "shape": [3], **categorical}
    model = build_model(
        {"model_type": "mvae", "latent_dim": 4, "modalities": [text_spec, label_spec]}
    )
    from core.data import MultimodalDataset

    batch = MultimodalDataset({"text": text, "label": torch.eye(3)[labels]}).batch()
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = model(batch).loss
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 5
    model.eval()
    generated = model.generate(batch, given=["label"], targets=["text"])["text"][0]
    assert generated.shape == (64, 8, 6) and torch.allclose(generated.sum(-1), torch.ones(64, 8))
    first_token = generated[:, 0].argmax(-1)
    assert (first_token == labels).float().mean() > 0.6  # chance: 1/3
