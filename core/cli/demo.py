"""`mmvae demo`: train a small MVAE on `digits` (seconds on a laptop) and evaluate it.

Prints JSON: test loss (eval mode), image -> label accuracy (cross-modal generation) and the
mean importance-sampled joint log-likelihood (k=100) on the 360-sample test split.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DEMO_MODEL: dict[str, Any] = {
    "model_type": "mvae",
    "latent_dim": 8,
    "encoder": {"kind": "mlp", "hidden": [256]},
    "decoder": {"kind": "mlp", "hidden": [256]},
    "beta": 0.5,
    "warmup": 5,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train a small MVAE on digits and evaluate it",
        description="Train an MVAE on digits (train split) and evaluate it on the test split.",
    )
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--output", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.set_defaults(func=run)


def evaluate_digits(model: Any, trainer: Any, test: Any, seed: int) -> dict[str, float]:
    """Test loss, image -> label accuracy and mean joint log-likelihood (k=100)."""
    import torch

    model.eval()
    loss = trainer.evaluate(test)["loss"]
    batch = test.batch().to(trainer.device)
    gen = torch.Generator(device=trainer.device).manual_seed(seed)
    with torch.no_grad():
        probs = model.generate(batch, given=["image"], targets=["label"], generator=gen)["label"][0]
        accuracy = (probs.argmax(-1) == batch.labels).float().mean()
        log_lik = model.log_likelihood(batch, k=100, generator=gen).mean()
    return {
        "test_loss": float(loss),
        "image_to_label_accuracy": float(accuracy),
        "test_log_likelihood": float(log_lik),
    }


def run_demo(
    epochs: int, output: str, seed: int = 0, device: str = "auto", progress: bool | None = None
) -> dict[str, Any]:
    import torch

    from core.data import builtin_modalities, load_builtin
    from core.models.registry import build_model
    from core.training import ProgressBar, Trainer, TrainerConfig

    train, test = load_builtin("digits", "train"), load_builtin("digits", "test")
    config = TrainerConfig(
        epochs=epochs,
        batch_size=64,
        learning_rate=2e-3,
        seed=seed,
        device=device,
        output_dir=output,
    )
    torch.manual_seed(seed)
    model = build_model({**DEMO_MODEL, "modalities": builtin_modalities("digits")})
    trainer = Trainer(model, train, None, config, [ProgressBar(force=progress)], "digits")
    result = trainer.fit(overwrite=True)
    metrics = evaluate_digits(model, trainer, test, seed)
    return {
        "model_type": model.model_type,
        "dataset": "digits",
        "epochs": result.epochs_run,
        "train_loss": result.train_metrics["loss"],
        **metrics,
        "train_seconds": round(result.wall_time, 2),
        "model_dir": result.model_dir,
    }


def run(args: argparse.Namespace) -> int:
    print(
        json.dumps(
            run_demo(args.epochs, args.output, args.seed, args.device, args.progress), indent=2
        )
    )
    return 0
