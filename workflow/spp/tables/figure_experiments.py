"""The small experiments behind Figures 1 and 2 of Lee et al. 2020 (7-layer MLPs on MNIST).

Each function runs one activation's grid in-process: a few hundred tiny networks, far too many
for one Snakemake job each, and each one cheap. They call only the public library
(init -> score -> mask -> approximate isometry -> Jacobian / training) and return plain data
(arrays, rows) that `spp.report.plotting` draws.

Method names follow the paper: ``{init}-{pruning}[-AI]`` with init VS (a variance-scaling
scheme) or LDI (orthogonal), pruning CS (connection sensitivity), Rand, or Dense (nothing).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

import spp
from spp.data.datasets import first_examples
from spp.pruning.masks import keep_all
from spp.pruning.scores import score_in_context
from spp.train.training import TrainConfig, train

PRUNINGS = {"CS": "snip", "Rand": "random", "Dense": "dense"}
_LABEL = re.compile(r"(VS|LDI)-(CS|Rand|Dense)(-AI)?")


@dataclass(frozen=True)
class Method:
    """One line of Figure 2: init scheme, pruning method (or dense), approximate isometry."""

    init: str  # library scheme, e.g. "orthogonal"
    prune: str  # "snip" | "random" | "dense"
    ai: bool
    label: str


def parse_method(label: str, vs_scheme: str = "vs-lecun") -> Method:
    """ "LDI-CS-AI" -> Method("orthogonal", "snip", True); VS means ``vs_scheme``."""
    m = _LABEL.fullmatch(label)
    if not m:
        raise ValueError(
            f"unknown method {label!r}; allowed: {{VS,LDI}}-{{CS,Rand,Dense}}[-AI], e.g. LDI-CS-AI"
        )
    init = "orthogonal" if m.group(1) == "LDI" else vs_scheme
    return Method(init, PRUNINGS[m.group(2)], bool(m.group(3)), label)


def _mlp(data, activation: str, depth: int = 7) -> torch.nn.Module:
    return spp.build_model(f"mlp-{depth}-{activation}", tuple(data.input_shape), data.num_classes)


def _scores(model, prune: str, data, seed: int, batch_size: int, examples: int | None) -> dict:
    """The score stage's call (scripts/score.py): the registry decides whether data is read."""
    return score_in_context(
        model, prune, context={"seed": seed},
        batches=lambda: first_examples(data.batches("train", batch_size), examples))


def sparsity_patterns(
    data,
    activation: str,
    sparsities: Sequence[float],
    seed: int = 0,
    gamma: float = 1.0,
    scheme: str = "sg",
    batch_size: int = 100,
    examples: int | None = None,
) -> dict:
    """Figure 1 for one activation: the CS mask of every layer at every sparsity.

    Connection sensitivity does not depend on the sparsity, so it is computed once and the
    masks are its global top-k at each sparsity. Returns ``{"masks": {sparsity: [bool array
    per layer (out x in)]}, "sensitivity": [array per layer], "layers": [names]}``.
    """
    model = _mlp(data, activation)
    spp.initialize(model, scheme, seed=seed, gamma=gamma if scheme == "sg" else None)
    scores = _scores(model, "snip", data, seed, batch_size, examples)
    names = list(spp.prunable_parameters(model, biases=False))  # the figure draws weight layers
    masks = {}
    for s in sparsities:
        mask = spp.global_mask(scores, float(s))
        masks[float(s)] = [mask[n].cpu().numpy().astype(bool) for n in names]
    return {
        "masks": masks,
        "sensitivity": [scores[n].detach().cpu().numpy().astype(np.float64) for n in names],
        "layers": names,
    }


def _pruned(model, base_state, scores, sparsity) -> tuple[torch.nn.Module, dict]:
    net = copy.deepcopy(model)
    net.load_state_dict(base_state)
    mask = keep_all(net) if scores is None or sparsity == 0 else spp.global_mask(scores, sparsity)
    spp.apply_mask(net, mask)
    return net, mask


def signal_rows(
    data,
    activation: str,
    methods: Sequence[Method],
    sparsities: Sequence[float],
    seeds: Sequence[int],
    isometry_steps: int,
    isometry_lr: float = 0.1,
    batch_size: int = 100,
    scoring_examples: int | None = None,
    jacobian_examples: int | None = None,
) -> list[dict]:
    """Figure 2a for one activation: Jacobian singular-value statistics of every method at
    every sparsity, one row per (method, sparsity, seed). A method with AI reuses the mask of
    the same method without AI (same init, same scores), as the paper's pipeline does."""
    rows = []
    for seed in seeds:
        for init in dict.fromkeys(m.init for m in methods):
            model = _mlp(data, activation)
            spp.initialize(model, init, seed=seed)
            base = copy.deepcopy(model.state_dict())
            for prune in dict.fromkeys(m.prune for m in methods if m.init == init):
                scores = (
                    None
                    if prune == "dense"
                    else _scores(model, prune, data, seed, batch_size, scoring_examples)
                )
                variants = [m for m in methods if m.init == init and m.prune == prune]
                for s in sparsities:
                    net, mask = _pruned(model, base, scores, float(s))
                    for m in sorted(variants, key=lambda m: m.ai):  # plain first, then repair
                        if m.ai:
                            spp.approximate_isometry(net, mask, steps=isometry_steps,
                                                     lr=isometry_lr)  # fmt: skip
                        stats = spp.jacobian_singular_values(
                            net, first_examples(data.batches("train", batch_size),
                                                jacobian_examples)
                        )
                        rows.append(
                            {
                                "activation": activation,
                                "method": m.label,
                                "sparsity": float(s),
                                "seed": int(seed),
                                **{k: float(v) for k, v in stats.items()},
                                "orthogonality": float(spp.orthogonality_score(net, mask)),
                            }
                        )
    return rows


def training_rows(
    data,
    activation: str,
    methods: Sequence[Method],
    sparsity: float,
    seeds: Sequence[int],
    train_cfg: dict,
    isometry_steps: int,
    isometry_lr: float = 0.1,
    batch_size: int = 100,
    scoring_examples: int | None = None,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """Figure 2b for one activation: training curves at one sparsity, one row per
    (method, seed, evaluation) with the history columns of `spp.train.training.train`."""
    rows = []
    for seed in seeds:
        for m in methods:
            model = _mlp(data, activation)
            spp.initialize(model, m.init, seed=seed)
            if m.prune == "dense":
                mask = keep_all(model)
            else:
                scores = _scores(model, m.prune, data, seed, batch_size, scoring_examples)
                mask = spp.global_mask(scores, float(sparsity))
            spp.apply_mask(model, mask)
            if m.ai:
                spp.approximate_isometry(model, mask, steps=isometry_steps, lr=isometry_lr)
            cfg = TrainConfig(**{**train_cfg, "seed": int(seed)})
            result = train(model, mask, data, cfg, device=device, log=lambda *_: None)
            base = {
                "activation": activation,
                "method": m.label,
                "sparsity": 0.0 if m.prune == "dense" else float(sparsity),
                "seed": int(seed),
            }
            for h in result.history:
                rows.append({**base, **h, "diverged": False})
            if result.summary["diverged"]:
                # A diverged run is a result (Appendix C: dense linear MLPs explode at lr 0.1);
                # keep a marker row so the figure can say so instead of silently missing a line.
                rows.append(
                    {
                        **base,
                        "iteration": int(result.summary["iterations_run"]),
                        "train_loss": float("nan"),
                        "diverged": True,
                    }
                )
    return rows
