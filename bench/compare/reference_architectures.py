"""Parameter counts of MultiVae 1.0.3's published image networks, the figures
tests/core/nn (test_resnet.py, test_networks.py) pin for this project's `resnet` and `conv`
kinds. Run in the reference
environment (bench/compare/env.py creates it):

    PYTHONPATH=bench/compare/torchvision_shim bench/compare/.venv-reference/bin/python \
        bench/compare/reference_architectures.py
"""

from __future__ import annotations

import json

from multivae.models.nn.cub import CUB_Resnet_Decoder, CUB_Resnet_Encoder
from multivae.models.nn.mmnist import (
    DecoderConvMMNIST,
    DecoderResnetMMNIST,
    EncoderConvMMNIST,
    EncoderResnetMMNIST,
)
from pythae.models.base import BaseAEConfig
from torch import nn


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


if __name__ == "__main__":
    print(
        json.dumps(
            {  # MMVAE+'s PolyMNIST networks (shared latent 10, no private branch), CUB's at 64
                "polymnist_encoder_latent_10": count(EncoderResnetMMNIST(0, 10)),
                "polymnist_decoder_latent_10": count(DecoderResnetMMNIST(10)),
                "cub_encoder_latent_64": count(CUB_Resnet_Encoder(64)),
                "cub_decoder_latent_64": count(CUB_Resnet_Decoder(64)),
                # MoPoE's PolyMNIST convolutions (MultiVae's copy), latent 10
                "polymnist_conv_encoder_latent_10": count(
                    EncoderConvMMNIST(BaseAEConfig(latent_dim=10))
                ),
                "polymnist_conv_decoder_latent_10": count(
                    DecoderConvMMNIST(BaseAEConfig(latent_dim=10))
                ),
            }
        )
    )
