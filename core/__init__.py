"""mmvae-service core: multimodal VAEs on partially observed data (PyTorch, no service code)."""

__version__ = "0.1.0"
