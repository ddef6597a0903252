"""The `text_cnn` kind: MMVAE's CUB sentence encoder and decoder, with its parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from core.nn import NetworkError, build_network
from core.nn.text import TokenEmbedding


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_cub_sentence_networks_have_mmvae_s_parameter_counts() -> None:
    """L = 32, V = 1590, E = 128, filters 32, latent 64 (MMVAE's src/models/vae_cub_sent.py).
    Encoder: embedding 1590·128 = 203,520; convs 1·32·16 + 32·64·16 + 64·128·16 + 2·128·128·4
    = 295,424; batch norms 2·(32 + 64 + 128·3) = 960; heads c1, c2 2·128·16·64 = 262,144.
    Decoder: transposed convs 64·128·16 + 2·128·128·4 + 128·64·16 + 64·32·16 + 32·16 = 426,496;
    batch norms 2·(128·3 + 64 + 32) = 960; linear 128·1590 + 1590 = 205,110."""
    encoder = build_network({"kind": "text_cnn"}, (32, 1590), (128,))
    decoder = build_network({"kind": "text_cnn"}, (64,), (32, 1590))
    assert parameters(encoder) == 203_520 + 295_424 + 960 + 262_144 == 762_048
    assert parameters(decoder) == 426_496 + 960 + 205_110 == 632_566


def test_tokens_map_to_codes_and_codes_to_token_logits() -> None:
    spec = {"kind": "text_cnn", "embedding": 64, "filters": 8}
    encoder, decoder = build_network(spec, (16, 20), (6,)), build_network(spec, (3,), (16, 20))
    tokens = F.one_hot(torch.randint(0, 20, (4, 16)), 20).float()
    assert encoder(tokens).shape == (4, 6)
    logits = decoder(torch.randn(4, 3))
    assert logits.shape == (4, 16, 20)
    loss = F.cross_entropy(logits.transpose(1, 2), tokens.argmax(-1))
    loss.backward()
    assert all(p.grad is not None for p in decoder.parameters())


def test_the_padding_token_embeds_to_zero_and_is_never_trained() -> None:
    torch.manual_seed(0)
    embedding = TokenEmbedding(5, 3, padding=1)
    padded = F.one_hot(torch.tensor([[1, 1]]), 5).float()
    assert torch.equal(embedding(padded), torch.zeros(1, 1, 2, 3))
    assert torch.equal(embedding(torch.zeros(1, 2, 5)), torch.zeros(1, 1, 2, 3))  # missing
    word = F.one_hot(torch.tensor([[3, 1]]), 5).float()
    embedding(word).sum().backward()
    assert torch.equal(embedding.weight.grad[1], torch.zeros(3))
    assert torch.equal(embedding.weight.grad[3], torch.ones(3))
    assert torch.equal(embedding(word)[0, 0, 0], embedding.weight[3])


def test_shapes_the_network_cannot_connect_are_refused() -> None:
    with pytest.raises(NetworkError, match=r"length \(12\) must be a multiple of 8"):
        build_network({"kind": "text_cnn"}, (12, 20), (4,))
    with pytest.raises(NetworkError, match=r"embedding \(100\) of 32"):
        build_network({"kind": "text_cnn", "embedding": 100}, (16, 20), (4,))
    with pytest.raises(NetworkError, match="padding_token 1 >= V = 1"):
        build_network({"kind": "text_cnn"}, (16, 1), (4,))
    with pytest.raises(NetworkError, match="one side must be one-hot tokens"):
        build_network({"kind": "text_cnn"}, (4,), (4,))


@pytest.mark.slow
def test_a_jmvae_with_sentence_networks_learns_captions_from_labels() -> None:
    """Captions [16, V] whose words follow the label, through a JMVAE (whose joint encoder
    starts as a copy of the sentence encoder, batch-norm statistics included)."""
    from core.data import MultimodalDataset
    from core.models import build_model
    from core.training import Trainer

    torch.manual_seed(0)
    n, vocabulary = 96, 12
    labels = torch.arange(n) % 3
    words = torch.stack([3 + labels, 6 + labels, torch.full_like(labels, 2)], 1)  # ... <eos>
    tokens = torch.cat([words, torch.ones(n, 13, dtype=torch.long)], 1)  # then <pad>
    data = MultimodalDataset(
        {"text": F.one_hot(tokens, vocabulary).float(), "label": F.one_hot(labels, 3).float()},
        labels=labels,
    )
    net = {"kind": "text_cnn", "embedding": 32, "filters": 8}
    text = {"name": "text", "shape": [16, vocabulary], "likelihood": {"kind": "categorical"},
            "encoder": net, "decoder": net}  # fmt: skip
    label = {"name": "label", "shape": [3], "likelihood": {"kind": "categorical"}}
    model = build_model({"model_type": "jmvae", "latent_dim": 4, "modalities": [text, label],
                         "encoder": {"kind": "mlp", "hidden": [16]},
                         "decoder": {"kind": "mlp", "hidden": [16]}})  # fmt: skip
    batch = data.batch()
    with torch.no_grad():
        before = float(model.eval()(batch).loss)
    trainer = {"epochs": 100, "batch_size": 32, "learning_rate": 3e-3, "device": "cpu"}
    Trainer(model, data, None, trainer).fit()
    with torch.no_grad():
        after = float(model.eval()(batch).loss)
        out = model.generate(batch, given=["label"], targets=["text"], n_samples=8)["text"]
    assert after < 0.5 * before
    first_words = out.mean(0)[:, 0].argmax(-1)  # the label's word opens every caption
    assert torch.equal(first_words, 3 + labels)
