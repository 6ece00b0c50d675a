"""The experiment of Frankle et al. (2021): error vs sparsity per method, with mask ablations.

One *run* = (network, method, sparsity, ablation, seed): prune the network (at init, or after
dense training for ``magnitude-after-training``), ablate the mask, train, record the test error.
``run_cells`` does every sparsity and ablation of one (network, method, seed) in one process, so a
method's scores are computed once per seed (SynFlow, being iterative, once per sparsity).

Choices the paper leaves to the implementation, stated here once:

- ``magnitude-after-training``: one-shot lottery-ticket rewinding, as the paper's code (a fork
  of OpenLTH) runs it: global ``magnitude`` scores of the *trained* dense network (same init and
  seed, the same recipe as the pruned runs); the kept weights restart from their values at the
  network's ``rewind_iteration`` of that dense run and train the whole recipe again from step 0.
  Its ablations act on that mask and those rewound weights: ``shuffle`` permutes the mask within
  each layer, ``reinit`` draws fresh weights, ``invert`` keeps the smallest trained weights.
- ``reinit`` draws from the same scheme with seed ``seed + REINIT_SEED_OFFSET``.
- ``shuffle`` uses seed ``seed``; SynFlow's ``invert`` re-runs SynFlow keeping the lowest
  saliencies in every round (``spp.pruning.synflow``), the others negate their one-shot scores.
- ``random`` is not ablated (shuffling or inverting random scores is random pruning again).
- A run whose mask fully prunes a layer (layer collapse) is trained anyway (it stays at chance)
  and its ``collapsed`` field names the layers: a result, not a crash.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from spp.frankle.grid import (
    AT_INIT,
    METHODS,
    PAPER_METHODS,
    UNABLATED,
    ablations_for,
    check_names,
)
from spp.pruning.ablations import ABLATIONS, ablate, collapsed_layers

__all__ = ["ABLATIONS", "AT_INIT", "METHODS", "PAPER_METHODS", "UNABLATED", "ablations_for",
           "aggregate", "check_names", "figure", "method_scores", "run_cells"]
from spp.pruning.masks import global_mask, weights_only
from spp.pruning.scores import method_info, score_in_context
from spp.train.training import TrainConfig

REINIT_SEED_OFFSET = 1_000_003

KEYS = ["network", "method", "ablation", "sparsity"]
METRICS = ["error", "error_paper_protocol", "final_error"]
# What the table, figure and claims report: the test error at the end of training, as OpenLTH
# reports accuracy (its runs train on the validation images too, so none is held out to select by).
METRIC = "final_error"
TRAIN_SPLITS = ("all", "train")


def method_scores(
    method: str,
    model: nn.Module,
    *,
    seed: int,
    sparsity: float | None = None,
    batches: Callable[[], Iterable] | None = None,
    input_shape: tuple[int, ...] | None = None,
    invert: bool = False,
    options: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Keep-scores of ``method`` on ``model`` (pass the trained model for after-training).

    Weights only: OpenLTH prunes the weights of conv and linear layers and trains the biases
    (Lee et al.'s protocol also prunes the biases; ``spp.nets.models.prunable_parameters``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown Frankle method {method!r}; valid: {', '.join(METHODS)}")
    context = {"seed": seed, "sparsity": sparsity, "input_shape": input_shape, "invert": invert}
    return weights_only(score_in_context(model, method, batches=batches, context=context,
                                         options=options))


def run_cells(
    method: str,
    make_model: Callable[[int], nn.Module],
    *,
    seed: int,
    sparsities: Sequence[float],
    ablations: Sequence[str],
    train_fn: Callable[[nn.Module, dict, int], dict],
    init_scheme: str,
    batches: Callable[[], Iterable] | None = None,
    input_shape: tuple[int, ...] | None = None,
    trained_state: dict | None = None,
    rewind_state: dict | None = None,
    options: dict | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Every (sparsity, ablation) run of ``method`` for one seed; returns one row per run.

    ``make_model(seed)`` builds and initializes the network; ``train_fn(model, mask, seed, tag)``
    trains it under ``mask`` and returns the summary (``spp.train.training`` keys); ``tag`` names
    the run uniquely within the job (e.g. for its checkpoint file).
    """
    check_names([method], ablations)
    after_training = method_info(method).after_training
    if after_training and (trained_state is None or rewind_state is None):
        raise ValueError(f"{method} needs trained_state= (the trained dense net) and "
                         "rewind_state= (its weights at the rewind iteration)")
    start = make_model(seed)
    scored = start  # the network the scores are computed on
    if after_training:
        scored = copy.deepcopy(start)
        scored.load_state_dict(trained_state)
        start.load_state_dict(rewind_state)
    one_shot = None
    # One scoring serves every sparsity unless the method's scores depend on the target one.
    if "sparsity" not in method_info(method).context:
        one_shot = method_scores(method, scored, seed=seed, batches=batches, options=options)
    rows = []
    for sparsity in sparsities:
        scores = one_shot if one_shot is not None else method_scores(
            method, scored, seed=seed, sparsity=sparsity, input_shape=input_shape,
            options=options)
        mask = global_mask(scores, sparsity)
        for how in ablations_for(method, ablations):
            model = copy.deepcopy(start)
            if how == "invert" and "invert" in method_info(method).context:  # inverted in-loop
                inv = method_scores(method, scored, seed=seed, sparsity=sparsity,
                                    input_shape=input_shape, invert=True, options=options)
                run_mask = global_mask(inv, sparsity)
            else:
                run_mask = ablate(mask, how, scores=scores, model=model, init=init_scheme,
                                  seed=seed + REINIT_SEED_OFFSET if how == "reinit" else seed)
            collapsed = collapsed_layers(run_mask)
            log(f"[frankle] {method} s={sparsity} {how} seed={seed}"
                + (f" layer collapse: {collapsed}" if collapsed else ""))
            summary = train_fn(model, run_mask, seed, f"s{sparsity:.10g}_{how}_seed{seed}")
            kept = sum(int(m.sum()) for m in run_mask.values())
            rows.append({
                "method": method, "ablation": how, "sparsity": float(sparsity), "seed": seed,
                **{k: summary.get(k) for k in METRICS},
                "diverged": bool(summary.get("diverged", False)),
                "kept": kept, "collapsed": ";".join(collapsed),
            })
    return rows


def _std(x: pd.Series) -> float:
    return float(x.std(ddof=1)) if x.notna().sum() > 1 else float("nan")


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """mean / std / n of each metric per network x method x ablation x sparsity (+ collapses)."""
    need = set(KEYS) | {"seed", "error"}
    missing = need - set(runs.columns)
    if missing:
        raise ValueError(f"run rows lack columns {sorted(missing)}")
    runs = runs.copy()
    runs["collapsed"] = runs.get("collapsed", pd.Series("", index=runs.index)).fillna("")
    out = []
    for key, g in runs.groupby(KEYS, sort=False):
        row = dict(zip(KEYS, key, strict=True))
        # a diverged run's metrics are its last good evaluation's: counted, never averaged in
        diverged = g["diverged"].fillna(False).astype(bool) if "diverged" in g else g["seed"] < 0
        for m in [c for c in METRICS if c in g]:
            vals = pd.to_numeric(g[m], errors="coerce").where(~diverged)
            row[f"{m}_mean"] = float(vals.mean())
            row[f"{m}_std"] = _std(vals)
            row[f"{m}_n"] = int(vals.notna().sum())
        row["collapsed_runs"] = int((g["collapsed"] != "").sum())
        row["diverged_runs"] = int(diverged.sum())
        out.append(row)
    table = pd.DataFrame(out)
    order = {m: i for i, m in enumerate(("dense", *METHODS))}
    aorder = {a: i for i, a in enumerate(ABLATIONS)}
    table = table.assign(
        _m=table["method"].map(order), _a=table["ablation"].map(aorder)
    ).sort_values(["network", "_m", "_a", "sparsity"], kind="stable")
    return table.drop(columns=["_m", "_a"]).reset_index(drop=True)


def ranking_text(table: pd.DataFrame, metric: str = METRIC) -> str:
    """Methods (unablated) by mean error over sparsities, per network, best first."""
    parts = []
    base = table[(table.ablation == "none") & (table.method != "dense")]
    for net, g in base.groupby("network", sort=False):
        means = g.groupby("method")[f"{metric}_mean"].mean().sort_values()
        parts.append(f"{net}: " + " < ".join(f"{m} ({v:.1f}%)" for m, v in means.items()))
    return "Mean test error of the unablated masks, best first: " + "; ".join(parts) + "."


def training_setup(data, recipe: dict, seed: int):
    """(data, TrainConfig) of one run from a network's recipe (config ``frankle.networks[].
    training``): lengths in epochs of the images it trains on; ``train_split: all`` adds the
    validation images to training, as OpenLTH trains on the whole official training set."""
    recipe = dict(recipe)
    split = recipe.pop("train_split", "all")
    if split not in TRAIN_SPLITS:
        raise ValueError(f"train_split must be one of {', '.join(TRAIN_SPLITS)}, got {split!r}")
    if split == "all":
        data = data.with_val_in_train()
    return data, TrainConfig.from_recipe(recipe, len(data.y["train"]), seed=seed)


def scoring_batches(data, batch_size: int, examples_per_class: int | None
                    ) -> Callable[[], Iterable]:
    """A factory of fresh scoring iterators over the first ``examples_per_class`` training images
    of each class (Frankle et al.'s code; None: the whole training split)."""
    if examples_per_class is not None:
        data = data.first_per_class("train", examples_per_class)
    return lambda: data.batches("train", batch_size)


LINESTYLES = {"none": "-", "shuffle": "--", "reinit": ":", "invert": "-."}


def figure(table: pd.DataFrame, metric: str = METRIC, note: str = ""):
    """Error vs weights remaining: one row of panels per network, one panel per method with its
    ablations (line styles); every panel also shows random pruning (black) and the dense net's
    error (grey line). x: percent of weights remaining, log scale, sparsest on the right, as
    Frankle et al. plot it. Error bars: seed std."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import NullLocator

    from spp.report.plotting import set_style

    set_style()
    nets = list(dict.fromkeys(table["network"]))
    if not nets:
        raise ValueError("empty Frankle table: nothing to plot")
    present = set(table["method"])
    panels = [m for m in METHODS if m in present and m not in UNABLATED]
    if not panels:
        panels = [m for m in METHODS if m in present]
    colors = dict(zip(METHODS, sns.color_palette("tab10", len(METHODS)).as_hex(), strict=True))
    fig, axes = plt.subplots(len(nets), len(panels), figsize=(3.3 * len(panels), 3.0 * len(nets)),
                             squeeze=False, sharey="row")

    def curve(ax, c, **style):
        c = c.sort_values("sparsity")
        ax.errorbar(100 * (1 - c["sparsity"]), c[f"{metric}_mean"],
                    yerr=c[f"{metric}_std"].fillna(0), marker="o", ms=3, capsize=2, **style)

    for row, net in zip(axes, nets, strict=True):
        g = table[table.network == net]
        dense = g[g.method == "dense"]
        for ax, method in zip(row, panels, strict=True):
            if not dense.empty:
                ax.axhline(float(dense[f"{metric}_mean"].iloc[0]), color="0.6", lw=1,
                           label="dense (unpruned)")
            rnd = g[(g.method == "random") & (g.ablation == "none")]
            if not rnd.empty and method != "random":
                curve(ax, rnd, color="black", lw=1.0, linestyle=(0, (1, 1)), label="random")
            for how in ABLATIONS:
                c = g[(g.method == method) & (g.ablation == how)]
                if not c.empty:
                    curve(ax, c, color=colors[method], linestyle=LINESTYLES[how],
                          lw=1.8 if how == "none" else 1.1,
                          label=method if how == "none" else how)
            ax.set_xscale("log")
            remaining = sorted({100 * (1 - s) for s in g["sparsity"] if s > 0}, reverse=True)
            ax.set_xticks(remaining, [f"{r:.3g}" for r in remaining], fontsize=7)
            ax.xaxis.set_minor_locator(NullLocator())
            ax.invert_xaxis()
            ax.set_title(f"{net}: {method}", fontsize=9)
            ax.set_xlabel("weights remaining (%)")
            ax.legend(fontsize=6)
        row[0].set_ylabel("test error (%)")
    if note:
        fig.suptitle(note, fontsize=9)
    fig.tight_layout()
    return fig
