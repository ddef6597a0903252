"""The bundled demo model `digits-demo`: a MoPoE on scikit-learn's 8x8 digits (image + label).

Shipped trained in `service/assets/digits-demo/` (safetensors + config, ~100 KB), so the service is
ready at once with no configuration; `python -m service.demo` retrains it (about 20 s on 2 cores;
image → label accuracy about 0.96 on the test split).
If the assets are missing, the first start trains it into `<data_dir>/demo/digits-demo/`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from core.models.base import MultimodalVAE

DEMO_NAME = "digits-demo"
ASSET_DIR = Path(__file__).parent / "assets" / DEMO_NAME
log = logging.getLogger("service.demo")

DEMO_CONFIG = {
    "model_type": "mopoe",
    "latent_dim": 8,
    "encoder": {"kind": "mlp", "hidden": [128]},
    "decoder": {"kind": "mlp", "hidden": [128]},
    "modalities": [
        {"name": "image", "shape": [1, 8, 8], "kind": "image", "likelihood": {"kind": "bernoulli"}},
        {
            "name": "label",
            "shape": [10],
            "kind": "categorical",
            "likelihood": {"kind": "categorical"},
            "weight": 20.0,
        },
    ],
}


def train_demo(target: Path, epochs: int = 40, seed: int = 0) -> Path:
    """Train the demo model on the digits train split and save it in `target`."""
    from core.data import load_builtin
    from core.models import build_model
    from core.training import Trainer, TrainerConfig

    torch.manual_seed(seed)
    model = build_model(DEMO_CONFIG)
    # it may train in the server's process, which must give freed memory back to the OS
    config = TrainerConfig(
        epochs=epochs, batch_size=64, learning_rate=2e-3, seed=seed, keep_freed_cpu_memory=False
    )
    start = time.perf_counter()
    Trainer(model, load_builtin("digits", "train"), config=config).fit()
    model.eval()
    info = {
        "dataset": "digits",
        "epochs": epochs,
        "seconds": round(time.perf_counter() - start, 1),
        "final_metrics": {"label_accuracy": demo_accuracy(model)},
    }
    model.save_pretrained(target, training_info=info)
    return target


@torch.no_grad()
def demo_accuracy(model: MultimodalVAE) -> float:
    """Accuracy of image → label generation on the digits test split (posterior mean latent)."""
    from core.data import load_builtin

    test = load_builtin("digits", "test")
    out = model.generate(test.batch(), ["image"], ["label"], mean_latent=True)["label"][0]
    return float((out.argmax(-1) == test.labels).float().mean())


def demo_dir(data_dir: Path) -> Path:
    """The folder holding the demo model: the bundled assets, else a copy trained on first use."""
    if (ASSET_DIR / "model.safetensors").is_file():
        return ASSET_DIR
    cached = data_dir / "demo" / DEMO_NAME
    if not (cached / "model.safetensors").is_file():
        log.info("training the %s demo model into %s (first start)", DEMO_NAME, cached)
        train_demo(cached)
    return cached


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    t0 = time.perf_counter()
    path = train_demo(ASSET_DIR)
    from core.models.pretrained import load_folder

    acc = demo_accuracy(load_folder(path))
    print(f"saved {path} in {time.perf_counter() - t0:.1f}s; image→label test accuracy {acc:.3f}")
