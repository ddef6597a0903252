"""Side by side with the reference implementations — MultiVae for its models, multi-view-AE for
its own (mcVAE, DVCCA, AE, DCCAE, mAAE, mWAE): quality, training speed and (MultiVae) evaluation
speed of each model, with the same data, networks, likelihoods, optimiser and budget
(bench/compare/protocol.py).

    python -m bench.compare [--models mvae,jmvae,...] [--seeds 0,1,2] [--parts quality,...]

The first run creates the reference environments it needs (env.py, multiview_env.py, a few
minutes each). Quality: for each model
and seed, both libraries train 30 epochs on digits (batch 64, Adam 1e-3) and are scored with the
same joint-NLL estimator (K = 1000) and coherences. Speed: training samples/s on 12,800 synthetic
samples at batch 64 and 256 for MultiVae, ours and ours with `compile`, alternated epoch by epoch
within each run (`--no-interleave`: run by run), the ratio to MultiVae taken within each run and
its median reported. Evaluation: each
library's own joint-NLL (K = 1000) and coherence evaluators timed on the same test samples.
Results: bench/results/compare.{json,md}.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    comma_ints,
    comma_list,
    finish,
    machine,
    machine_line,
    median,
    rotated,
    table,
    write,
)
from bench.compare import env, interleave, multiview_env, protocol

HERE = Path(__file__).resolve().parent
MODELS = (
    "mvae",
    "jmvae",
    "mopoe",
    "mmvae",
    "mvtcae",
    "crmvae",
    "telbo",
    "jnf",
    "dmvae",
    "mmvae_plus",
    "cmvae",
    "nexus",
    "mhvae",
    "cvae",
    "ae",
    "mcvae",
    "dvcca",
    "dccae",
    "maae",
    "mwae",
    "me_mvae",
    "gpoe",
    "mmjsd",
    "weighted_dmvae",
)
MULTIVIEW = {"ae", "mcvae", "dvcca", "dccae", "maae", "mwae", "me_mvae", "gpoe", "mmjsd",
             "weighted_dmvae"}  # fmt: skip
NOT_COMPARED: dict[str, str] = {}  # models of this project the comparison does not run, and why
# conditional_nll: −log p(image | label), the likelihood a conditional model (CVAE) defines;
# nll_unit_scale: our Nexus's NLL with p(z_m | z) at scale 1, MultiVae's (ours: its tracked s_m)
QUALITY = (
    "nll",
    "conditional_nll",
    "nll_unit_scale",
    "image_to_label",
    "label_to_image",
    "test_loss",
)
LIBRARIES = ("reference", "ours")  # result keys; `reference_library(m)` names the reference
# our options that give the reference's behaviour where the two libraries' defaults differ
# (`--options` overrides them, e.g. '{"mmjsd": {"js_form": "paper"}}' for our default mmJSD)
SAME_AS_REFERENCE = {
    "telbo": {"rescale_likelihoods": True},  # MultiVae's TELBO rescales by default
    "mmvae_plus": {"reconstruction_option": "joint_prior"},  # MultiVae 1.0.3's default
    "cmvae": {"reconstruction_option": "joint_prior"},  # likewise
    "mmjsd": {"js_form": "multiview_ae"},  # multi-view-AE's JS term, mixture and inference
}
# options both libraries get (the same names in both configs): the settings under which Nexus and
# MHVAE train at all on this small set (tests/core/models/quality.py; at their defaults both
# stay at chance), and Nexus's bottom latent size, which MultiVae leaves without a default.
# MultiVae's MHVAE has no KL warmup: reference.py applies `warmup` by setting its β every epoch.
SAME_IN_BOTH = {
    "nexus": {
        "modalities_specific_dim": {"image": 16, "label": 16},  # our default
        "dropout_rate": 0.5,
        "top_beta": 0.1,
        "bottom_betas": {"image": 0.5, "label": 0.5},
    },
    "mhvae": {"warmup": 20, "beta": 0.5},
}


# models trained in stages, timed in their later stage too (rows "<model> stage 2"): both
# libraries get these options, which start it at epoch 2; epoch 1 and the stage's first epoch
# (its compile, its fresh optimizer) are not timed. A user's 30 epochs of TELBO or JNF spend 20
# in it (warmup 10), and it is a different computation: the unimodal encoders (and JNF's flows)
# trained on what the frozen joint model gives.
LATER_STAGE = {"telbo": {"warmup": 1}, "jnf": {"warmup": 1}}
FIRST_STAGE_EPOCHS = "warmup"  # the option, in both libraries, that LATER_STAGE sets
DEFAULT_FIRST_STAGE_EPOCHS = 10  # its default, in both

# MultiVae 1.0.3 models whose joint NLL its LikelihoodsEvaluator cannot time: left out of the
# evaluation part, with the reason printed
NOT_IMPLEMENTED = "its compute_joint_nll raises NotImplementedError"  # MultiVae's, not ours
NO_REFERENCE_EVALUATOR = {
    "nexus": NOT_IMPLEMENTED,
    "mhvae": NOT_IMPLEMENTED,
    "cvae": "it has no joint NLL (a conditional model)",
    "cmvae": "the evaluator calls compute_joint_nll with one argument more than it takes "
    "(TypeError)",
    "mmvae_plus": "its compute_joint_nll removes a modality from the dataset "
    "(inputs.data.popitem()) before its loop, so it times another computation",
}


def reference_library(model: str) -> str:
    return "multiviewae" if model in MULTIVIEW else "multivae"


# environment variables the reference's interpreters run with (`--reference-env`), e.g. glibc's
# allocator settings that our keep_freed_cpu_memory makes, to time the reference under them too
REFERENCE_ENV: dict[str, str] = {}

RUNNERS_BY_LIBRARY = {  # library -> (script, environment module)
    "multivae": ("reference.py", env),
    "multiviewae": ("multiview_reference.py", multiview_env),
}


def ours_options(model: str, options: dict[str, Any]) -> dict[str, Any]:
    """Our options for `model`: the reference's behaviour where the defaults differ, those both
    libraries get, then the caller's."""
    same = {**SAME_AS_REFERENCE.get(model, {}), **SAME_IN_BOTH.get(model, {})}
    return {**same, **options.get(model, {})}


def reference_options(model: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reference's options for `model`: its defaults but for those both libraries get, then
    the caller's (`--reference-options`)."""
    return {**SAME_IN_BOTH.get(model, {}), **(extra or {}).get(model, {})}


@functools.cache
def code_version(library: str) -> str:
    """A hash of the code a library's results depend on (its runner, the protocol, and for this
    project all of core/), so cached results never outlive a change to that code."""
    script = "ours.py" if library == "ours" else RUNNERS_BY_LIBRARY[library][0]
    files = [HERE / "protocol.py", HERE / script]
    if library == "ours":
        files += sorted((HERE.parents[1] / "core").rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def command(library: str, spec: dict[str, Any]) -> tuple[list[str], dict[str, str] | None]:
    """The command line and environment (None: this one) of `library`'s runner for `spec`."""
    if library == "ours":
        return [sys.executable, str(HERE / "ours.py"), json.dumps(spec)], None
    name, environment = RUNNERS_BY_LIBRARY[library]
    argv = [str(environment.python()), str(HERE / name), json.dumps(spec)]
    return argv, {**os.environ, **REFERENCE_ENV} if REFERENCE_ENV else None


def run(library: str, spec: dict[str, Any], cache: Path | None = None) -> dict[str, Any]:
    """One task in a fresh interpreter of `library`'s environment. A quality result already in
    `cache` (same library, code and spec) is reused, so an interrupted comparison resumes;
    timings never are: both libraries of a speed comparison must run now, alternated."""
    extra_env = {} if library == "ours" else REFERENCE_ENV
    keyed = [library, code_version(library), spec] + ([extra_env] if extra_env else [])
    identity = json.dumps(keyed, sort_keys=True)
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    cached = cache is not None and spec["task"] == "quality"
    saved = cache / f"{library}-{spec['task']}-{key}.json" if cached else None
    if saved is not None and saved.is_file():
        return json.loads(saved.read_text())
    argv, environment = command(library, spec)
    out = subprocess.run(argv, capture_output=True, text=True, check=False, env=environment)
    if out.returncode != 0:
        raise RuntimeError(f"{library} {spec} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result.get("error"):  # the reference could not train it: said in the results
        print(f"{library} {spec}: {result['error']}", flush=True)
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(result))
    return result


def quality(models, seeds, epochs, k, options, jobs, cache, ref_options=None) -> dict[str, Any]:
    """The model's reference library and ours on every (model, seed); `jobs` tasks at a time."""
    tasks = [
        (
            reference_library(m) if lib == "reference" else lib,
            {
                "task": "quality",
                "model": m,
                "seed": s,
                "epochs": epochs,
                "batch_size": 64,
                "k": k,
                "options": ours_options(m, options)
                if lib == "ours"
                else reference_options(m, ref_options),
            },
        )
        for m in models
        for s in seeds
        for lib in LIBRARIES
    ]
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda t: run(*t, cache), tasks))
    out: dict[str, Any] = {m: {lib: {} for lib in LIBRARIES} for m in models}
    for (lib, spec), result in zip(tasks, results, strict=True):
        side = "ours" if lib == "ours" else "reference"
        for key, value in result.items():
            out[spec["model"]][side].setdefault(key, []).append(value)
        print(f"quality {spec['model']} seed {spec['seed']} {lib}: {result}", flush=True)
    for m in models:
        out[m]["reference_library"] = reference_library(m)
        ref, ours = out[m]["reference"], out[m]["ours"]
        out[m]["summary"] = {
            lib: {key: summary(out[m][lib].get(key, [])) for key in QUALITY} for lib in LIBRARIES
        }
        out[m]["at_least_as_good"] = verdict(ref, ours)
    return out


def summary(values: list[float | None]) -> dict[str, float] | None:
    """Mean and std over seeds; None where a library gives no figure (a deterministic model's
    NLL, a direction a model does not generate, a model the reference could not train)."""
    if not values or any(v is None for v in values):
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    return {"mean": mean, "std": var**0.5}


def verdict(ref: dict[str, list[float]], ours: dict[str, list[float]]) -> dict[str, bool]:
    """The issue's bar: our mean NLL ≤ the reference's mean + 2 std; our mean coherences ≥ the
    reference's mean − 2 std. A figure only we give passes; one only the reference gives fails.
    A conditional model's −log p(image | label), where given, is held to the NLL's bar."""
    out = {}
    keys = [("nll", 1), ("image_to_label", -1), ("label_to_image", -1)]
    if "conditional_nll" in ref or "conditional_nll" in ours:
        keys.append(("conditional_nll", 1))
    for key, sign in keys:
        r, o = summary(ref.get(key, [])), summary(ours.get(key, []))
        if r is None or o is None:
            out[key] = r is None
            continue
        out[key] = sign * o["mean"] <= sign * r["mean"] + 2 * r["std"]
    return out


RUNNERS = {  # "reference": the model's reference library
    "reference": ("reference", {}),
    "ours": ("ours", {"matrix_products": True}),  # also profiles its matrix products
    "ours compiled": ("ours", {"compile": True}),
}


def speed(
    models,
    batch_sizes,
    runs,
    size,
    epochs,
    options,
    ref_options=None,
    interleaved=True,
    warm_steps=0,
) -> dict[str, Any]:
    """Samples/s of the reference, ours and ours with `compile`; the ratios to the reference
    are taken within each run (None where it could not train). `interleaved`: a run alternates
    the three epoch by epoch (interleave.py; each epoch round in a rotated order), else they
    train one after the other, in an order rotated run by run. `warm_steps`: the timed epochs
    start after at least that many optimizer steps of the timed stage (more untimed epochs),
    where a long run spends its time (e.g. with denormal floats in the optimizer's moments).
    `compile_seconds`: what the compiled runner's warm-up epochs took beyond as many steady
    ones (compiling). Models in `LATER_STAGE` get a second row, timed in their later stage.
    `ceiling`: the reference's step over our step's matrix products (medians of the runs'
    quotients): the speed-up left if everything but those products, as torch runs them in
    fp32, took no time."""
    out: dict[str, Any] = {}
    names = list(RUNNERS)
    timed = [(m, m, {}, 1) for m in models]  # (row, model, options both get, warm-up epochs)
    timed += [(f"{m} stage 2", m, LATER_STAGE[m], 2) for m in models if m in LATER_STAGE]
    for row, m, both, warmup in timed:
        for bs in batch_sizes:
            untimed = warmup - 1 + protocol.warm_epochs(warm_steps, size, bs)
            options_here, total = dict(both), epochs + untimed - 1
            if m in LATER_STAGE and not both and total + 1 > DEFAULT_FIRST_STAGE_EPOCHS:
                # stage 1 through the timed epochs and the one our runner profiles after them
                options_here[FIRST_STAGE_EPOCHS] = total + 1
            got: dict[str, list[float]] = {name: [] for name in names}
            ratios: dict[str, list[float]] = {name: [] for name in names[1:]}
            compile_seconds = []
            products: list[float] = []  # our step's matrix-product seconds, run by run
            epochs_timed: dict[str, list[float]] = {name: [] for name in names}  # every run's
            for r in range(runs):
                tasks = {}
                for name in rotated(names, r):
                    lib, extra = RUNNERS[name]
                    lib = reference_library(m) if lib == "reference" else lib
                    if lib == "ours":
                        own = {**ours_options(m, options), **options_here}
                    else:
                        own = {**reference_options(m, ref_options), **options_here}
                    spec = {"task": "speed", "model": m, "batch_size": bs, "size": size}
                    spec.update(epochs=total, options=own, run=r, **extra)
                    spec.update({"untimed": untimed} if untimed != 1 else {})
                    spec.update({"interleaved": True} if interleaved else {})
                    tasks[name] = (lib, spec)
                results = run_speed_tasks(tasks, r, interleaved)
                for name in rotated(names, r):
                    result, extra = results[name], RUNNERS[name][1]
                    got[name].append(result["samples_per_s"])
                    epochs_timed[name] += result.get("epoch_seconds", [])[untimed:]
                    if extra.get("compile"):  # what the warm-up epochs took beyond steady ones
                        steady = size / result["samples_per_s"]
                        warm = result["epoch_seconds"][:warmup]
                        compile_seconds.append(sum(warm) - warmup * steady)
                    if extra.get("matrix_products"):
                        products.append(result["matrix_product_seconds_per_step"])
                for name in ratios:
                    base = got["reference"][-1]
                    ratios[name].append(None if base is None else got[name][-1] / base)
                print(f"speed {row} bs {bs} run {r + 1}: { {n: got[n][-1] for n in names} }")
            out[f"{row} bs {bs}"] = {
                "reference_library": reference_library(m),
                "samples_per_s": got,
                "ratios": ratios,
                "ratio": {name: median_or_none(v) for name, v in ratios.items()},
                "median": {name: median_or_none(v) for name, v in got.items()},
                "compile_seconds": median(compile_seconds),
                "matrix_product_seconds_per_step": median(products),
                "ceiling": median_or_none(ceilings(got["reference"], products, bs)),
                "epoch_seconds": epochs_timed,
                "fastest_ratio": {name: fastest_ratio(epochs_timed, name) for name in ratios},
            }
    return out


def fastest_ratio(epoch_seconds: dict[str, list[float]], name: str) -> float | None:
    """The reference's fastest timed epoch over `name`'s, of all runs: the load on a shared
    machine only ever adds time, so the fastest epochs are the least disturbed ones."""
    ours, reference = epoch_seconds[name], epoch_seconds["reference"]
    return min(reference) / min(ours) if ours and reference else None


def run_speed_tasks(
    tasks: dict[str, tuple[str, dict[str, Any]]], r: int, interleaved: bool
) -> dict[str, dict[str, Any]]:
    """Each task's result (name -> (library, spec)), alternated epoch by epoch or run one
    after the other in the order given."""
    if not interleaved:
        return {name: run(lib, spec) for name, (lib, spec) in tasks.items()}
    runners = {}
    for name, (lib, spec) in tasks.items():
        argv, environment = command(lib, spec)
        epochs = spec["epochs"] + bool(spec.get("matrix_products"))  # + its profiled epoch
        runners[name] = interleave.Runner(argv, environment, epochs)
    results = interleave.alternate(runners, lambda names, e: rotated(names, e + r))
    for name, result in results.items():
        if result.get("error"):  # the reference could not train it: said in the results
            print(f"{tasks[name][0]} {tasks[name][1]}: {result['error']}", flush=True)
    return results


def ceilings(reference: list[float | None], products: list[float], bs: int) -> list[float | None]:
    """Run by run, the reference's step seconds (`bs` over its samples/s) over our step's
    matrix-product seconds: the speed-up left if everything else took no time."""
    pairs = zip(reference, products, strict=True)
    return [None if base is None else bs / base / p for base, p in pairs]


def median_or_none(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else median(values)


def evaluation(models, runs, k, n_test) -> dict[str, Any]:
    """Seconds of each library's own joint-NLL and coherence evaluators on the test split,
    alternating which goes first; speed-up = MultiVae's seconds / ours, per pair (MultiVae's
    models only: multi-view-AE has no evaluators of its own for these figures)."""
    out: dict[str, Any] = {}
    for m in [m for m in models if m in NO_REFERENCE_EVALUATOR]:
        print(f"evaluation {m}: skipped, MultiVae 1.0.3: {NO_REFERENCE_EVALUATOR[m]}")
    evaluated = [m for m in models if reference_library(m) == "multivae"]
    for m in [m for m in evaluated if m not in NO_REFERENCE_EVALUATOR]:
        got: dict[str, dict[str, list[float]]] = {lib: {} for lib in LIBRARIES}
        for r in range(runs):
            for lib in rotated(list(LIBRARIES), r):
                spec = {"task": "evaluation", "model": m, "batch_size": 64, "k": k, "run": r}
                spec["n_test"] = n_test
                library = "multivae" if lib == "reference" else lib
                for key, value in run(library, spec).items():
                    got[lib].setdefault(key, []).append(value)
            print(f"evaluation {m} run {r + 1}: {got}", flush=True)
        out[m] = {"seconds": got}
        for key in ("nll_seconds", "coherence_seconds"):
            pairs = zip(got["reference"][key], got["ours"][key], strict=True)
            out[m][f"{key[:-8]}_speedup"] = median([a / b for a, b in pairs])
    return out


QUALITY_COLUMNS = (("nll", 2), ("image_to_label", 3), ("label_to_image", 3), ("test_loss", 2))


def parameters(side: dict[str, Any]) -> str:
    """A library's parameter count (the same for every seed), or — where it gave none."""
    counts = sorted(set(side.get("parameters") or []) - {None})
    return " / ".join(f"{c:,}" for c in counts) or "—"


def fmt(s: dict[str, float] | None, digits: int) -> str:
    return "—" if s is None else f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def rounded(value: float | None) -> str:
    return "—" if value is None else str(round(value))


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Side by side with the reference implementations", ""]
    lines += [machine_line(results["machine"]), ""]
    p = results["params"]
    versions = "; ".join(
        ", ".join(f"{k} {v}" for k, v in found.items()) for found in results["reference"].values()
    )
    lines += [
        f"References ({versions}) and this project; networks, data and estimators: "
        "bench/compare/protocol.py; the reference of each model in the `reference` column.",
        "",
    ]
    if p.get("reference_env"):
        pairs = ", ".join(f"{k}={v}" for k, v in p["reference_env"].items())
        lines += [f"The references ran with the environment variables {pairs}.", ""]
    if "quality" in results:
        lines += [
            f"## Quality (digits, {p['epochs']} epochs, batch 64, Adam 1e-3, seeds {p['seeds']}, "
            f"joint NLL with K = {p['k']})",
            "",
        ]
        rows = []
        for m, r in results["quality"].items():
            s, ok = r["summary"], r["at_least_as_good"]
            row = [m, r["reference_library"]]
            for key, digits in QUALITY_COLUMNS:
                mark = "" if ok.get(key, True) else " ✗"
                row += [fmt(s["reference"][key], digits), fmt(s["ours"][key], digits) + mark]
            rows.append(row)
        headers = ["model", "reference", "NLL reference", "NLL ours", "image→label reference"]
        headers += ["ours", "label→image reference", "ours", "test loss reference", "ours"]
        note = (
            "✗: below the bar (NLL above the reference's mean + 2 std, coherence below its mean "
            "− 2 std). Chance coherence is 0.10. —: no figure (a deterministic model's NLL, a "
            "conditional model's joint NLL, a direction the model does not generate, or a model "
            "the reference could not train: its `error` in the JSON results). Test losses are "
            "each library's own training objective on the test split, per sample."
        )
        lines += [table(headers, rows), "", note, ""]
        conditional = []
        for m, r in results["quality"].items():
            ref, ours = (r["summary"][lib].get("conditional_nll") for lib in LIBRARIES)
            if ref is not None or ours is not None:
                mark = "" if r["at_least_as_good"].get("conditional_nll", True) else " ✗"
                conditional.append([m, fmt(ref, 2), fmt(ours, 2) + mark])
        if conditional:
            headers = ["model", "conditional NLL reference", "ours"]
            text = "Conditional models: −log p(image | label), the same estimator"
            lines += [f"{text} (K = {p['k']}):", ""]
            lines += [table(headers, conditional), ""]
        for m, r in results["quality"].items():
            unit = r["summary"]["ours"].get("nll_unit_scale")
            if unit is not None:
                lines += [
                    f"{m}, ours with p(z_m | z) at scale 1 (MultiVae's) instead of its tracked "
                    f"s_m: NLL {fmt(unit, 2)}.",
                    "",
                ]
        counts = [
            f"{m} {parameters(r['reference'])} / {parameters(r['ours'])}"
            for m, r in results["quality"].items()
        ]
        lines += ["Parameters, reference / ours: " + "; ".join(counts) + ".", ""]
    if "speed" in results:
        alternation = (
            "the libraries alternated epoch by epoch within each run"
            if p.get("speed_interleaved")
            else "the libraries alternated run by run"
        )
        warm = p.get("speed_warm_steps", 0)
        timed = (
            f"the epochs after {warm} optimizer steps (of the later stage in 'stage 2' rows)"
            if warm
            else "epoch 2 onwards ('stage 2' rows: of epoch 3 onwards, the later stage)"
        )
        lines += [
            f"## Training speed (synthetic {p['speed_size']} samples, samples/s of {timed}, "
            f"{p['speed_runs']} runs, {alternation})",
            "",
        ]
        rows = [
            [
                key,
                r["reference_library"],
                rounded(r["median"]["reference"]),
                rounded(r["median"]["ours"]),
                ratio_text(r["ratio"]["ours"]),
                rounded(r["median"]["ours compiled"]),
                ratio_text(r["ratio"]["ours compiled"]),
                f"{r['compile_seconds']:.0f}",
                f"{1000 * r['matrix_product_seconds_per_step']:.2f}",
                ratio_text(r.get("ceiling")),
                " ".join("—" if x is None else f"{x:.2f}" for x in r["ratios"]["ours compiled"]),
                ratio_text(r.get("fastest_ratio", {}).get("ours compiled")),
            ]
            for key, r in results["speed"].items()
        ]
        headers = ["model", "reference", "reference samples/s", "ours", "ours / reference"]
        headers += ["ours compiled", "compiled / reference", "compile s"]
        headers += ["matrix products ms/step", "ceiling", "per run", "fastest epochs"]
        note = (
            "samples/s, medians; ratios taken within a run. 'compiled': TrainerConfig "
            "compile=True (each full step compiled whole, fused_step, where the model's step "
            "allows it, else the forward; before 2026-12-07 the forward only), timed after its "
            "first epoch, which paid the compile seconds shown. 'matrix products': what our "
            "step spends in them (torch profiler, one untimed epoch); 'ceiling': the "
            "reference's step over that, the speed-up left if all else took no time. 'fastest "
            "epochs': compiled / reference, each library's fastest timed epoch of all runs (the "
            "least disturbed by the load)."
        )
        lines += [table(headers, rows), "", note, ""]
    if "evaluation" in results:
        lines += [
            f"## Evaluation speed ({p['eval_samples'] or 'all'} test samples, "
            f"{p['speed_runs']} runs alternated; each library's "
            f"own evaluators: joint NLL with K = {p['k']}, cross-modal coherence; MultiVae's "
            "models only, multi-view-AE has no evaluators of its own for these, and MultiVae's "
            "joint NLL evaluator none that runs for "
            f"{', '.join(sorted(NO_REFERENCE_EVALUATOR))})",
            "",
        ]
        rows = []
        for m, r in results["evaluation"].items():
            row = [m]
            for part in ("nll", "coherence"):
                row += [f"{median(r['seconds'][lib][f'{part}_seconds']):.2f}" for lib in LIBRARIES]
                row.append(f"{r[f'{part}_speedup']:.1f}x")
            rows.append(row)
        headers = ["model", "NLL s MultiVae", "ours", "speed-up", "coherence s MultiVae", "ours"]
        lines += [table([*headers, "speed-up"], rows), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=comma_list, default=list(MODELS))
    parser.add_argument("--parts", type=comma_list, default=["quality", "speed", "evaluation"])
    parser.add_argument("--seeds", type=comma_ints, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--k", type=int, default=1000, help="importance samples of the NLL")
    parser.add_argument("--jobs", type=int, default=2, help="quality tasks run at a time")
    parser.add_argument("--speed-batch-sizes", type=comma_ints, default=[64, 256])
    parser.add_argument("--speed-runs", type=int, default=3)
    parser.add_argument(
        "--eval-samples",
        type=int,
        default=None,
        help="test samples the evaluators are timed on (default: the whole test split)",
    )
    parser.add_argument("--speed-size", type=int, default=12_800)
    parser.add_argument("--speed-epochs", type=int, default=2)
    parser.add_argument(
        "--speed-warm-steps",
        type=int,
        default=0,
        help="time only epochs after this many optimizer steps (e.g. 1000: denormal floats "
        "have appeared in the optimizer's moments, as in a long run)",
    )
    parser.add_argument(
        "--interleave",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="alternate the libraries' speed runs epoch by epoch (else run by run)",
    )
    example = '{"mvae": {"annealing": "per_epoch"}}'
    parser.add_argument(
        "--options", type=json.loads, default={}, help=f"our options per model, e.g. '{example}'"
    )
    example = '{"mhvae": {"clamp_log_var": false}}'
    parser.add_argument(
        "--reference-options",
        type=json.loads,
        default={},
        help=f"the reference's options per model, e.g. '{example}'",
    )
    parser.add_argument(
        "--reference-env",
        type=lambda s: dict(pair.split("=", 1) for pair in comma_list(s)),
        default={},
        help="environment variables the references run with, e.g. 'MALLOC_TRIM_THRESHOLD_=1'",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="compare", help="results file name")
    parser.add_argument(
        "--cache", type=Path, default=HERE / ".cache", help="finished tasks (reused on a rerun)"
    )
    args = parser.parse_args(argv)
    REFERENCE_ENV.clear()
    REFERENCE_ENV.update(args.reference_env)
    libraries = sorted({reference_library(m) for m in args.models})
    for lib in libraries:
        RUNNERS_BY_LIBRARY[lib][1].ensure()
    info = machine()
    results: dict[str, Any] = {
        "reference": {lib: RUNNERS_BY_LIBRARY[lib][1].versions() for lib in libraries},
        "params": {
            "models": args.models,
            "seeds": args.seeds,
            "epochs": args.epochs,
            "k": args.k,
            "speed_size": args.speed_size,
            "speed_runs": args.speed_runs,
            "reference_env": args.reference_env,
            "speed_epochs": args.speed_epochs,
            "speed_warm_steps": args.speed_warm_steps,
            "speed_interleaved": args.interleave,
            "eval_samples": args.eval_samples,
            "options": args.options,
            "reference_options": args.reference_options,
        },
    }
    if "quality" in args.parts:
        results["quality"] = quality(
            args.models,
            args.seeds,
            args.epochs,
            args.k,
            args.options,
            args.jobs,
            args.cache,
            args.reference_options,
        )
    if "evaluation" in args.parts:
        results["evaluation"] = evaluation(args.models, args.speed_runs, args.k, args.eval_samples)
    if "speed" in args.parts:
        results["speed"] = speed(
            args.models,
            args.speed_batch_sizes,
            args.speed_runs,
            args.speed_size,
            args.speed_epochs,
            args.options,
            args.reference_options,
            args.interleave,
            args.speed_warm_steps,
        )
    results["machine"] = finish(info)
    write(args.name, results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
