"""Per-model quality on `digits` over several seeds: joint NLL (importance sampling, K draws)
and both cross-modal coherences, after the slow quality test's short training (30 epochs, MLP
2x256, latent 16, batch 64, Adam 1e-3).

    python -m bench.model_quality --models crmvae,me_mvae,gpoe --seeds 0,1,2 [--k 1000] [--append]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, finish, machine, machine_line, table, write
from core.data.builtin import load_builtin
from core.metrics import evaluate
from tests.core.models.quality import image_classifier, quality, train_digits_model

FIGURES = ("joint_nll", "image_to_label", "label_to_image", "canonical_correlation")


def measure(model_type: str, seed: int, k: int, clf: Any) -> dict[str, float]:
    model = train_digits_model(model_type, seed=seed)
    figures = quality(model, clf)
    report = evaluate(model, load_builtin("digits", "test"), metrics=["likelihood"], k=k)
    return {  # a deterministic model's report skips the likelihood: None
        "joint_nll": report["metrics"]["likelihood"].get("joint_nll"),
        "image_to_label": figures["image_to_label"],
        "label_to_image": figures["label_to_image"],
        "canonical_correlation": figures.get("canonical_correlation"),
    }


def _mean_std(values: list[float | None]) -> str:
    if any(v is None for v in values):
        return "—"  # not defined for the model (see the note)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def markdown(results: dict[str, Any]) -> str:
    rows = [
        [model, *(_mean_std([r.get(key) for r in runs]) for key in FIGURES)]
        for model, runs in results["runs"].items()
    ]
    return "\n".join(
        [
            "# Model quality on digits",
            "",
            machine_line(results["machine"]),
            f"seeds {results['seeds']}, K = {results['k']}; mean ± std over seeds. Chance "
            "coherence is 0.10. CVAE's NLL is the conditional −log p(image | label), and it "
            "does not generate labels (—); deterministic models (AE, DCCAE, mAAE, mWAE) have no "
            "likelihood (—); DVCCA infers from its encoded modality (the image) only (—); DCCAE "
            "generates each modality from its own code, so its figure is the mean of the top 9 "
            "canonical correlations between its image and label test codes.",
            "",
            table(["model", "joint NLL", "image→label", "label→image", "canonical corr."], rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="comma-separated model types")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--k", type=int, default=1000, help="importance samples for the NLL")
    parser.add_argument("--name", default="model_quality", help="results file name")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    parser.add_argument(
        "--append", action="store_true", help="add the models to the results already there"
    )
    args = parser.parse_args(argv)
    info = machine()
    seeds = [int(s) for s in args.seeds.split(",")]
    clf = image_classifier()
    runs = {m: [measure(m, s, args.k, clf) for s in seeds] for m in args.models.split(",") if m}
    earlier = args.out / f"{args.name}.json"
    if args.append and earlier.is_file():
        before = json.loads(earlier.read_text())
        if (before["seeds"], before["k"]) != (seeds, args.k):
            raise SystemExit("--append: the earlier results used other seeds or K")
        runs = {**before["runs"], **runs}
    results = {"machine": finish(info), "seeds": seeds, "k": args.k, "runs": runs}
    write(args.name, results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
