"""multi-view-AE (`multiviewae`), run by bench.compare in its own virtual environment (see
multiview_env.py), beside reference.py's MultiVae.

    python bench/compare/multiview_reference.py '{"task": "quality", "model": "mcvae", "seed": 0,
        "epochs": 30, "batch_size": 64, "k": 1000}'
    python bench/compare/multiview_reference.py '{"task": "speed", "model": "ae", "size": 60000,
        "epochs": 3, "batch_size": 64}'

Models (ours -> multi-view-AE): ae AE, mcvae mcVAE, dvcca DVCCA, dccae DCCAE, maae mAAE, mwae
mWAE, me_mvae me_mVAE, gpoe weighted_mVAE, mmjsd mmJSD, weighted_dmvae weighted_DMVAE.
`"options"` in the spec (optional) is merged into the config's `model` section, e.g.
{"private": true} for DVCCA-private or {"beta": 0.25}; `"discriminator_hidden"` (mAAE, mWAE)
replaces the discriminator's hidden layers. Each is built from a multi-view-AE config file
(written to a temporary directory) with protocol.py's setup: z_dim 16, per view an MLP encoder
and decoder with hidden layers [256, 256] and ReLU (`non_linear`), the image flattened to 64
values in [0, 1] (view 0) and the one-hot label (view 1); decoders `mlp.Decoder` with the
library's `Bernoulli` (image, logits) and `Categorical` (label, logits) distributions; Adam at
1e-3. It is trained by the library's own `fit` (its Lightning Trainer and data module: CPU,
no validation split, no logger, checkpoint or progress bar; files it writes go to the temporary
directory) and the script prints one JSON object as its last line: the protocol's figures
(quality) or epoch times (speed). `notes` in the quality output says what differs from the
protocol for the model. If the library's training fails (an exception, or non-finite parameters
after it), the output keeps its keys with null figures and adds `error` (and, for quality, the
completed epochs' `epoch_seconds`); the exit status is 0.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import protocol
import pytorch_lightning as pl
import torch
from multiviewae.base.representations import weightedProductOfExperts
from torch import Tensor

MODELS = {"ae": "AE", "mcvae": "mcVAE", "dvcca": "DVCCA", "dccae": "DCCAE", "maae": "mAAE",
          "mwae": "mWAE", "me_mvae": "me_mVAE", "gpoe": "weighted_mVAE",
          "mmjsd": "mmJSD", "weighted_dmvae": "weighted_DMVAE"}  # fmt: skip
VARIATIONAL = {"mcvae", "dvcca", "me_mvae", "gpoe", "mmjsd", "weighted_dmvae"}
# private latents of protocol.PRIVATE dimensions per view: the encoders give [private, shared]
PRIVATE_LATENTS = {"weighted_dmvae"}
JOINT = {"me_mvae", "gpoe", "mmjsd"}  # one joint posterior of every view: the NLL's proposal
ADVERSARIAL = {"maae", "mwae"}
VIEWS = list(protocol.SHAPES)  # view 0: image, view 1: label
HIDDEN = [protocol.HIDDEN, protocol.HIDDEN]
# the discriminator's hidden layers (ReLU): this project's default (core/models/adversarial.py)
DISCRIMINATOR_HIDDEN = [64, 64]
DIST = "multiviewae.base.distributions."
MLP = "multiviewae.architectures.mlp."


def lightning_python311() -> None:
    """pytorch-lightning 1.5.10 (multiviewae pins it) formats its str-mixin enums into attribute
    names, e.g. f"_has_setup_{TrainerFn.FITTING}"; Python 3.11 formats such a member as
    "TrainerFn.FITTING" instead of its value ("fit") and the data module's setup fails with
    AttributeError. This restores the pre-3.11 formatting for Lightning's enums."""
    from pytorch_lightning.trainer.states import TrainerFn
    from pytorch_lightning.utilities.enums import LightningEnum

    if f"{TrainerFn.FITTING}" != TrainerFn.FITTING.value:
        LightningEnum.__format__ = lambda self, spec: str.__format__(self.value, spec)


def private(spec: dict[str, Any]) -> bool:
    """DVCCA-private (`"private": true` in the spec's options)."""
    return bool(spec.get("options", {}).get("private", False))


# ---- building -------------------------------------------------------------------------------
def z_dim(kind: str) -> int:
    """The library's z_dim: the shared latent, plus the private one where a model has it (its
    encoders' output, split as [private s_dim, shared])."""
    return protocol.LATENT + (protocol.PRIVATE if kind in PRIVATE_LATENTS else 0)


def yaml_config(kind: str, spec: dict[str, Any], out: str) -> str:
    """The user config file (multi-view-AE merges it into its defaults for the model)."""
    model: dict[str, Any] = {"z_dim": z_dim(kind), "learning_rate": 1e-3,
                             "seed": int(spec.get("seed", 0)), "seed_everything": True}  # fmt: skip
    if kind in VARIATIONAL:
        model.update(sparse=False, threshold=0)
    if kind == "dvcca":
        model["private"] = private(spec)
    if kind in PRIVATE_LATENTS:  # the library's default s_dim is 3; ours and MultiVae's 2
        model.update(private=True, s_dim=protocol.PRIVATE)
    if kind == "mmjsd":  # its default has private latents (s_dim 2), ours none; and the
        model["private"] = False  # library's subset encoding needs private = False
    model.update(spec.get("options", {}))
    variational = kind in VARIATIONAL
    encoder = {
        "_target_": MLP + ("VariationalEncoder" if variational else "Encoder"),
        "hidden_layer_dim": HIDDEN,
        "non_linear": True,
        "bias": True,
        "enc_dist": {"_target_": DIST + ("Normal" if variational else "Default")},
    }

    def decoder(dist: str) -> dict[str, Any]:
        return {"_target_": MLP + "Decoder", "hidden_layer_dim": HIDDEN, "non_linear": True,
                "bias": True, "dec_dist": {"_target_": DIST + dist}}  # fmt: skip

    config = {
        "out_dir": out,
        "model": model,
        "datamodule": {"batch_size": int(spec["batch_size"]), "is_validate": False},
        "encoder": {"default": encoder},
        "decoder": {"dec0": decoder("Bernoulli"), "dec1": decoder("Categorical")},
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": int(spec["epochs"]),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "default_root_dir": out,
        },
        "logger": {"save_dir": out},  # replaced by no logger in `build`
    }
    path = Path(out) / "config.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return str(path)


def build(kind: str, spec: dict[str, Any], out: str) -> Any:
    import hydra
    import multiviewae

    torch.manual_seed(int(spec.get("seed", 0)))
    cls = getattr(multiviewae, MODELS[kind])
    dims = [math.prod(protocol.SHAPES[v]) for v in VIEWS]
    model = cls(cfg=yaml_config(kind, spec, out), input_dim=dims, z_dim=z_dim(kind))
    # `optimizer` and `discriminator` are not among the keys a user config may set
    # (base.constants.CONFIG_KEYS), so they are set on the built model
    model.cfg.optimizer._target_ = "torch.optim.Adam"  # DCCAE's default is LBFGS
    if kind in ADVERSARIAL:
        d = model.cfg.discriminator
        d.hidden_layer_dim = list(spec.get("discriminator_hidden", DISCRIMINATOR_HIDDEN))
        d.non_linear = True
        # as the library built it: mWAE sets is_wasserstein after its discriminator is made
        wasserstein = model.discriminator.is_wasserstein
        model.discriminator = hydra.utils.instantiate(
            d, input_dim=model.z_dim, output_dim=1, is_wasserstein=wasserstein, _convert_="all"
        )
    model.cfg.logger = None  # fit() instantiates it: None -> Trainer(logger=None)
    return model


def views(data: dict[str, Tensor]) -> list[Tensor]:
    return [data[v].flatten(1) for v in VIEWS]


class EpochTimer(pl.Callback):
    """Times each training epoch (the model's `configure_callbacks` returns it: `fit` passes
    only the callbacks of its config to the Trainer)."""

    def __init__(self, gate: protocol.EpochGate) -> None:
        self.seconds: list[float] = []
        self.first = self.last = self.start = 0.0
        self.error: str | None = None
        self.gate = gate

    def callbacks(self) -> list[pl.Callback]:
        return [self]

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        self.gate.wait()
        self.start = time.perf_counter()
        if not self.seconds:
            self.first = self.start

    def on_train_epoch_end(self, trainer: Any, module: Any, *args: Any) -> None:
        self.last = time.perf_counter()
        self.seconds.append(self.last - self.start)
        self.gate.report(self.seconds[-1])


def train(model: Any, data: dict[str, Tensor], spec: dict[str, Any]) -> EpochTimer:
    """The library's `fit`; returns the timer of its epochs, whose `error` says how training
    failed (an exception in the library, or non-finite parameters after it), else None."""
    timer = EpochTimer(protocol.EpochGate(spec))
    model.configure_callbacks = timer.callbacks
    try:
        model.fit(*views(data), max_epochs=int(spec["epochs"]), batch_size=int(spec["batch_size"]))
    except Exception as e:  # reported in the output
        step = getattr(getattr(model, "trainer", None), "global_step", None)
        timer.error = f"{type(e).__name__} in the library's fit at global step {step}: {e}"
    finally:
        del model.configure_callbacks
    if timer.error is None and not all(torch.isfinite(p).all() for p in model.parameters()):
        timer.error = "non-finite parameters after training"
    return timer


# ---- the protocol's view of a multi-view-AE model --------------------------------------------
class Adapter:
    """Latents from the model's `encode` (one draw of a posterior, as the protocol's coherence
    takes; deterministic models: the code), decoded by the target view's decoder; the generated
    image is the Bernoulli mean, the label the categorical logits."""

    def __init__(self, kind: str, model: Any) -> None:
        self.kind, self.model = kind, model.eval()
        model._training = False  # what the library's predict_* set (DVCCA/mcVAE read it)

    def encode(self, data: dict[str, Tensor]) -> list[Any]:
        return self.model.encode(views(data))

    def view_latent(self, data: dict[str, Tensor], given: str) -> Any:
        i = VIEWS.index(given)
        if self.kind == "gpoe":  # the generalised PoE of one view: its expert, precision × w_i
            mu, logvar = self.model.encoders[i](views(data)[i])
            weight = self.model.poe_weight[i : i + 1]
            return normal(*weightedProductOfExperts()(mu[None], logvar[None], weight))
        if self.kind in JOINT:  # the library's own posterior of a subset of views
            return self.model.encode_subset(views(data), [i])[0]
        z = self.encode(data)
        return z[0] if self.kind == "dvcca" else z[i]  # DVCCA: image only

    def generate(self, data: dict[str, Tensor], given: str, target: str) -> Tensor:
        z = self.view_latent(data, given)
        if not isinstance(z, Tensor):  # a posterior: one draw (not its mean)
            z = torch.distributions.Normal(z.loc, z.scale).sample()
        out = self.model.decoders[VIEWS.index(target)](z)
        if target == "image":
            return out.probs.reshape(-1, *protocol.SHAPES["image"])
        return out.x  # Categorical keeps the logits as `x`

    # the joint NLL (the variational models)
    def proposal(self, data: dict[str, Tensor]) -> Any:
        z = self.encode(data)
        if self.kind == "dvcca" or self.kind in JOINT:  # the image view's / the joint posterior
            return protocol.Factorised(torch.distributions.Normal(z[0].loc, z[0].scale))
        loc = torch.stack([q.loc for q in z])
        scale = torch.stack([q.scale for q in z])
        return protocol.UniformMixture(torch.distributions.Normal(loc, scale))

    def log_prior(self, z: Tensor) -> Tensor:
        return self.model.prior.log_prob(z).sum(-1)  # the library's prior, N(0, 1)

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        image, label = (self.model.decoders[i](z) for i in range(len(VIEWS)))
        return {
            "image": image.logits.reshape(*z.shape[:-1], *protocol.SHAPES["image"]),
            "label": label.x,
        }


class PrivateAdapter(Adapter):
    """weighted_DMVAE: each encoder gives [private (s_dim), shared]; the joint shared posterior
    is the library's weighted PoE of the views' shared parts, and decoder i reads [private_i,
    shared]. The protocol's z is [shared, private image, private label]. Generation from one
    view: its own shared expert (as ours infers from one modality) and the target's private
    code from the prior N(0, I) (the library has no cross-view generation for it)."""

    def experts(self, data: dict[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
        return [self.model.encoders[i](x) for i, x in enumerate(views(data))]

    def proposal(self, data: dict[str, Tensor]) -> Any:
        s, experts = protocol.PRIVATE, self.experts(data)
        mu_c = torch.stack([mu[:, s:] for mu, _ in experts])
        logvar_c = torch.stack([logvar[:, s:] for _, logvar in experts])
        loc, log_var = weightedProductOfExperts()(mu_c, logvar_c, self.model.poe_weight)
        parts = [protocol.Factorised(normal(loc, log_var))]
        parts += [protocol.Factorised(normal(mu[:, :s], logvar[:, :s])) for mu, logvar in experts]
        return protocol.Product(parts, self.block_sizes())

    def block_sizes(self) -> list[int]:
        return [protocol.LATENT] + [protocol.PRIVATE] * len(VIEWS)

    def log_prior(self, z: Tensor) -> Tensor:
        return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        shared, *private = z.split(self.block_sizes(), -1)
        image, label = (
            self.model.decoders[i](torch.cat([private[i], shared], -1)) for i in range(len(VIEWS))
        )
        return {
            "image": image.logits.reshape(*z.shape[:-1], *protocol.SHAPES["image"]),
            "label": label.x,
        }

    def generate(self, data: dict[str, Tensor], given: str, target: str) -> Tensor:
        s = protocol.PRIVATE
        mu, logvar = self.experts(data)[VIEWS.index(given)]
        shared = normal(mu[:, s:], logvar[:, s:]).sample()
        private = torch.randn(len(shared), s)
        out = self.model.decoders[VIEWS.index(target)](torch.cat([private, shared], -1))
        if target == "image":
            return out.probs.reshape(-1, *protocol.SHAPES["image"])
        return out.x


def normal(loc: Tensor, log_var: Tensor) -> torch.distributions.Normal:
    return torch.distributions.Normal(loc, torch.exp(0.5 * log_var))


class ImageOnly:
    """For DVCCA, which encodes the image only: label -> image is not generated (a placeholder
    of zeros, whose coherence is discarded)."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter

    def generate(self, data: dict[str, Tensor], given: str, target: str) -> Tensor:
        if given == "image":
            return self.adapter.generate(data, given, target)
        return torch.zeros(len(data["y"]), *protocol.SHAPES[target])


def notes(kind: str, spec: dict[str, Any]) -> str:
    out = [
        "multiviewae mlp networks: encoders and decoders with hidden layers [256, 256], ReLU "
        "(non_linear), z_dim 16; image view flattened to 64 values; decoders mlp.Decoder with "
        "distributions.Bernoulli (image, logits; torch Bernoulli log_prob on grey pixels with "
        "argument validation off) and distributions.Categorical (label, logits; x * log_softmax "
        "summed by the loss); Adam lr 1e-3",
        "trained by the library's fit: its MultiviewDataModule with is_validate false (all "
        "training data, no validation split) loads batches without shuffling (shuffle=False in "
        "the library); no logger/checkpoint/progress bar",
        "train_seconds: from the first epoch's start to the last epoch's end (Lightning "
        "callback), excluding trainer setup and the library's on_train_end model saving",
        "coherence: latent of the given view (posterior mean for variational models, "
        "return_mean) decoded by the target's decoder; image = Bernoulli mean, label = logits",
    ]
    if kind == "ae":
        out.append(
            "AE loss: -log-likelihood of every view decoded from every view's code (own and "
            "cross reconstructions), averaged over the n_views^2 pairs"
        )
    if kind == "mcvae":
        out.append(
            "mcVAE loss (library): sum over views of KL(q(z|x_i) || N(0,1)) times beta "
            f"({spec.get('options', {}).get('beta', 1)}) minus the "
            "log-likelihood of all n_views^2 (code i, decoder j) pairs divided by n_views^2 = 4: "
            "with beta 1 the KL weighs 4x as much against the reconstruction as in the sum of "
            "the views' ELBOs (beta 0.25 gives that sum / 4); one posterior sample (rsample) per "
            "view during training"
        )
        out.append("nll: proposal = uniform mixture of the two views' Gaussian posteriors")
    if kind == "dvcca":
        if private(spec):
            out.append(
                "DVCCA-private: shared encoder on the image plus a private encoder per view, "
                "each with z_dim (16) dimensions (protocol.PRIVATE is 2; the library sizes them "
                "as the shared latent), each decoder reads [shared, own private] (32); the "
                "library has no cross-view prediction for it: nll and both coherences null"
            )
        else:
            out.append(
                "DVCCA: one encoder, on the image view only; loss: KL(q(z|image)||N(0,1)) minus "
                "the summed log-likelihoods of both views; label -> image not generated (null); "
                "nll proposal = the image view's posterior"
            )
        out.append(
            "DVCCA configure_optimizers returns one Adam per network (the encoder, each private "
            "encoder, each decoder); Lightning 1.5 automatic optimisation runs training_step once "
            "per optimizer per batch (3 forward/backward passes per batch, DVCCA-private 5, each "
            "stepping one network)"
        )
    if kind == "dccae":
        out.append(
            "DCCAE: optimizer set to Adam (library default LBFGS; `optimizer` is not settable by "
            "a user config, so it was set on model.cfg); loss: _lambda(1) * own-view "
            "reconstruction -log-likelihood summed over views + negative CCA correlation of "
            "the two codes; the library trains no cross-view decoding, so cross generation "
            "decodes one view's code with the other view's decoder (untrained path); the "
            "one-hot label view has 10 distinct inputs, so its 16-dim codes have covariance "
            "rank <= 9 in every batch; the library's CCA regularises the covariance blocks with "
            "EPS = 1e-8 (base.constants, not configurable) and backpropagates through torch.svd "
            "of them, whose gradient can become non-finite (then the next step fails with "
            "'linalg.svd: ... non-finite values')"
        )
    if kind in ADVERSARIAL:
        hidden = list(spec.get("discriminator_hidden", DISCRIMINATOR_HIDDEN))
        out.append(
            f"{MODELS[kind]} discriminator: mlp.Discriminator with hidden_layer_dim {hidden}, "
            "ReLU, dropout 0, bias (library default: no hidden layer, linear z -> 1; "
            "`discriminator` is not settable by a user config, so it was rebuilt from model.cfg "
            "after construction); 7 Adam optimizers (per view: encoder, decoder, and a separate "
            "'generator' Adam over the same encoder parameters; one for the discriminator), "
            "manual optimisation: reconstruction step, discriminator step, generator step per "
            "batch; reconstruction loss as AE (all n_views^2 pairs averaged)"
        )
    if kind == "maae":
        out.append(
            "mAAE losses (library): discriminator -mean(log d(prior)) - sum_views mean(1 - "
            "log d(z_i)), divided by n_views + 1; generator mean over views of mean(1 - log d(z_i))"
        )
    if kind == "mwae":
        out.append(
            "mWAE: the library sets is_wasserstein = True only after its discriminator is built, "
            "so the critic ends in a sigmoid (kept here, as the library builds it); critic "
            "weights clipped to [-0.01, 0.01] after each discriminator step"
        )
    if kind in JOINT:
        out.append(
            f"{MODELS[kind]}: nll proposal = the library's joint posterior of both views (eval "
            "encode); coherence from one view: "
            + (
                "the weighted PoE of that view alone (its expert with precision times its "
                "learned weight)"
                if kind == "gpoe"
                else "the library's encode_subset of that view"
            )
        )
    if kind in PRIVATE_LATENTS:
        out.append(
            f"{MODELS[kind]}: private true, s_dim {protocol.PRIVATE} (library default 3), z_dim "
            f"{z_dim(kind)} = shared {protocol.LATENT} + private; nll proposal = the library's "
            "weighted PoE of the views' shared parts times each view's private posterior; "
            "generation from one view: its shared expert, the target's private code from "
            "N(0, I); the library's loss repeats the joint KL per view and the cross KLs per "
            "pair of views (ours follows DMVAE's ELBOs)"
        )
    if kind == "mmjsd":
        out.append(
            "mmJSD with private false (library default: private latents, s_dim 2; ours has "
            "none by default, and the library's encode_subset needs private false); its JS "
            "term omits the prior's KL (still divided by M + 1), its reconstruction mixture has "
            "the prior as a component, and it infers with the dynamic prior (ours: "
            "js_form multiview_ae, the same; our default follows the paper)"
        )
    if kind not in VARIATIONAL:
        out.append("deterministic codes: nll null")
    return "; ".join(out)


# ---- tasks -----------------------------------------------------------------------------------
def quality(spec: dict[str, Any]) -> dict[str, Any]:
    kind, seed = spec["model"], int(spec["seed"])
    train_data, test = protocol.digits("train"), protocol.digits("test")
    if spec.get("subset"):  # trials: the first n training samples
        train_data = {m: x[: int(spec["subset"])] for m, x in train_data.items()}
    with tempfile.TemporaryDirectory() as out:
        model = build(kind, spec, out)
        timer = train(model, train_data, spec)
    parameters = sum(p.numel() for p in model.parameters())
    if timer.error is not None:
        return {"nll": None, "image_to_label": None, "label_to_image": None,
                "train_seconds": None, "parameters": parameters, "error": timer.error,
                "epoch_seconds": timer.seconds, "notes": notes(kind, spec)}  # fmt: skip
    adapter = (PrivateAdapter if kind in PRIVATE_LATENTS else Adapter)(kind, model)
    dvcca_private = kind == "dvcca" and private(spec)
    nll = None
    with torch.no_grad():
        if kind in VARIATIONAL and not dvcca_private:
            torch.manual_seed(10_000 + seed)
            nll = float(-protocol.joint_log_likelihood(adapter, test, k=int(spec["k"])).mean())
        classify = protocol.image_classifier(protocol.digits("train"))
        if dvcca_private:
            figures = {"image_to_label": None, "label_to_image": None}
        elif kind == "dvcca":
            figures = protocol.coherence(ImageOnly(adapter), test, classify)
            figures["label_to_image"] = None
        else:
            figures = protocol.coherence(adapter, test, classify)
    return {
        "nll": nll,
        **figures,
        "train_seconds": timer.last - timer.first,
        "parameters": parameters,
        "notes": notes(kind, spec),
    }


def speed(spec: dict[str, Any]) -> dict[str, Any]:
    data = protocol.synthetic(int(spec["size"]))
    with tempfile.TemporaryDirectory() as out:
        model = build(spec["model"], {**spec, "seed": 0}, out)
        timer = train(model, data, spec)
    times = timer.seconds
    if timer.error is not None:
        return {"epoch_seconds": times, "samples_per_s": None, "error": timer.error}
    speed = protocol.steady_samples_per_s(times, int(spec["size"]), spec.get("untimed", 1))
    return {"epoch_seconds": times, "samples_per_s": speed}


if __name__ == "__main__":
    torch.distributions.Distribution.set_default_validate_args(False)  # grey pixels, Bernoulli
    lightning_python311()
    protocol.flush_denormals_if_asked()
    task = json.loads(sys.argv[1])
    if task["model"] not in MODELS:
        raise SystemExit(f"unknown model {task['model']!r}: one of {sorted(MODELS)}")
    tasks = {"quality": quality, "speed": speed}
    result = tasks[task["task"]](task)
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
