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
  saliencies in every round (``spp.synflow``), the others negate their one-shot scores.
- ``random`` is not ablated (shuffling or inverting random scores is random pruning again).
- A run whose mask fully prunes a layer (layer collapse) is trained anyway (it stays at chance)
  and its ``collapsed`` field names the layers: a result, not a crash.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from spp.ablations import ABLATIONS, ablate, collapsed_layers
from spp.masks import global_mask, weights_only
from spp.scores import method_info, methods, score_in_context
from spp.training import TrainConfig

# Every registered pruning method can run here (the loop supplies any context a method takes):
# the paper's six in its order (figures, legends), then any other, by name.
PAPER_METHODS = ("snip", "grasp", "synflow", "magnitude", "magnitude-after-training", "random")
METHODS: tuple[str, ...] = tuple(sorted(
    methods(), key=lambda m: (PAPER_METHODS.index(m) if m in PAPER_METHODS else 99, m)))
UNABLATED = ("random",)
# The methods at initialization whose ablations the paper tests.
AT_INIT = tuple(m for m in PAPER_METHODS
                if not method_info(m).after_training and m not in UNABLATED)
REINIT_SEED_OFFSET = 1_000_003

KEYS = ["network", "method", "ablation", "sparsity"]
METRICS = ["error", "error_paper_protocol", "final_error"]
# What the table, figure and claims report: the test error at the end of training, as OpenLTH
# reports accuracy (its runs train on the validation images too, so none is held out to select by).
METRIC = "final_error"
TRAIN_SPLITS = ("all", "train")


def check_names(methods: Iterable[str], ablations: Iterable[str]) -> None:
    """ValueError naming any unknown method or ablation, with the valid names."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown Frankle method(s) {bad}; valid: {', '.join(METHODS)}")
    bad = [a for a in ablations if a not in ABLATIONS]
    if bad:
        raise ValueError(f"unknown ablation(s) {bad}; valid: {', '.join(ABLATIONS)}")


def ablations_for(method: str, ablations: Sequence[str]) -> list[str]:
    """The ablations run for ``method`` (``random`` only unablated)."""
    return ["none"] if method in UNABLATED else list(ablations)


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
    (Lee et al.'s protocol also prunes the biases; ``spp.models.prunable_parameters``).
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
    trains it under ``mask`` and returns the summary (``spp.training`` keys); ``tag`` names the
    run uniquely within the job (e.g. for its checkpoint file).
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
        for m in [c for c in METRICS if c in g]:
            vals = pd.to_numeric(g[m], errors="coerce")
            row[f"{m}_mean"] = float(vals.mean())
            row[f"{m}_std"] = _std(vals)
            row[f"{m}_n"] = int(vals.notna().sum())
        row["collapsed_runs"] = int((g["collapsed"] != "").sum())
        out.append(row)
    table = pd.DataFrame(out)
    order = {m: i for i, m in enumerate(("dense", *METHODS))}
    aorder = {a: i for i, a in enumerate(ABLATIONS)}
    table = table.assign(
        _m=table["method"].map(order), _a=table["ablation"].map(aorder)
    ).sort_values(["network", "_m", "_a", "sparsity"], kind="stable")
    return table.drop(columns=["_m", "_a"]).reset_index(drop=True)


def ablation_effects(table: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """Per network, method and ablation: error(ablated) - error(unablated), averaged over
    sparsities, with the pooled seed std of the two (the scale a difference must beat)."""
    rows = []
    for (net, method), g in table[table.method != "dense"].groupby(["network", "method"],
                                                                    sort=False):
        base = g[g.ablation == "none"].set_index("sparsity")
        for how, ga in g[g.ablation != "none"].groupby("ablation", sort=False):
            ga = ga.set_index("sparsity")
            common = base.index.intersection(ga.index)
            if common.empty:
                continue
            diff = ga.loc[common, f"{metric}_mean"] - base.loc[common, f"{metric}_mean"]
            spread = pd.concat([ga.loc[common, f"{metric}_std"], base.loc[common, f"{metric}_std"]])
            rows.append({"network": net, "method": method, "ablation": how,
                         "delta": float(diff.mean()), "noise": float(spread.mean()),
                         "sparsities": len(common)})
    return pd.DataFrame(rows, columns=["network", "method", "ablation", "delta", "noise",
                                       "sparsities"])


def claim_text(table: pd.DataFrame, tolerance_pp: float = 1.0, metric: str = METRIC) -> str:
    """What the measured curves say about the paper's claim, in sentences, from ``table``.

    Frankle et al.: at init, shuffling within layers and reinitializing preserve (or improve)
    accuracy, so the methods' per-weight choices do not matter; after training they do. A
    difference counts as a change when it exceeds ``max(tolerance_pp, 2 x seed std)``.
    """
    effects = ablation_effects(table, metric)
    if effects.empty:
        return "No ablation was measured, so the claim cannot be assessed."
    parts = []
    for net, e in effects.groupby("network", sort=False):
        sentences = []
        for how in ("shuffle", "reinit", "invert"):
            ee = e[e.ablation == how]
            if ee.empty:
                continue
            desc = []
            for _, r in ee.iterrows():
                bar = max(tolerance_pp, 2 * r.noise) if math.isfinite(r.noise) else tolerance_pp
                verdict = ("worse" if r.delta > bar else "better" if r.delta < -bar
                           else "within noise")
                desc.append(f"{r.method} {r.delta:+.1f} pp ({verdict})")
            sentences.append(f"{how}: " + ", ".join(desc))
        at_init = e[e.method.isin(AT_INIT) & e.ablation.isin(["shuffle", "reinit"])]
        hurt = [
            f"{r.method}/{r.ablation}" for _, r in at_init.iterrows()
            if r.delta > (max(tolerance_pp, 2 * r.noise) if math.isfinite(r.noise)
                          else tolerance_pp)
        ]
        if at_init.empty:
            verdict = "no at-init ablation measured"
        elif hurt:
            verdict = (f"NOT consistent with the claim that shuffling/reinitializing at init "
                       f"preserves accuracy: worse for {', '.join(hurt)}")
        else:
            verdict = ("consistent with the claim: shuffling and reinitializing the at-init "
                       "masks did not make any method worse beyond noise")
        after = e[(e.method == "magnitude-after-training") & (e.ablation == "shuffle")]
        if not after.empty:
            r = after.iloc[0]
            bar = max(tolerance_pp, 2 * r.noise) if math.isfinite(r.noise) else tolerance_pp
            verdict += ("; after training, shuffling "
                        + ("hurts, as the paper reports" if r.delta > bar
                           else "does not hurt beyond noise here (the paper reports it hurts)"))
        parts.append(f"{net} (mean error change vs. the unablated mask, over sparsities): "
                     + "; ".join(sentences) + f". Verdict: {verdict}.")
    return " ".join(parts)


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
    """Error vs sparsity, one panel per network; methods are colours, ablations dashed styles.

    The dense network's error (method ``dense``) is a grey horizontal line. Error bars: seed std.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from spp.plotting import set_style

    set_style()
    nets = list(dict.fromkeys(table["network"]))
    if not nets:
        raise ValueError("empty Frankle table: nothing to plot")
    colors = dict(zip(METHODS, sns.color_palette("tab10", len(METHODS)).as_hex(), strict=True))
    fig, axes = plt.subplots(1, len(nets), figsize=(5.2 * len(nets), 4.2), squeeze=False)
    for ax, net in zip(axes[0], nets, strict=True):
        g = table[table.network == net]
        dense = g[g.method == "dense"]
        if not dense.empty:
            ax.axhline(float(dense[f"{metric}_mean"].iloc[0]), color="0.5", lw=1,
                       label="dense (unpruned)")
        for method in METHODS:
            for how in ABLATIONS:
                c = g[(g.method == method) & (g.ablation == how)].sort_values("sparsity")
                if c.empty:
                    continue
                ax.errorbar(
                    100 * c["sparsity"], c[f"{metric}_mean"], yerr=c[f"{metric}_std"].fillna(0),
                    color=colors[method], linestyle=LINESTYLES[how], marker="o", ms=3,
                    lw=1.6 if how == "none" else 1.0, capsize=2,
                    label=method if how == "none" else f"{method} ({how})",
                )
        ax.set_title(net)
        ax.set_xlabel("sparsity (% of weights pruned)")
        ax.set_ylabel("test error (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    if note:
        fig.suptitle(note, fontsize=9)
    fig.tight_layout()
    return fig


class ReportText:
    """A text file's content, read when rendered (``str``): lets a report caption quote text that
    is computed after the workflow ran. Its repr names only the path, so as a Snakemake param it
    never makes a rule rerun."""

    def __init__(self, path: str):
        self.path = str(path)

    def __repr__(self) -> str:
        return f"ReportText({self.path!r})"

    def __str__(self) -> str:
        try:
            with open(self.path) as f:
                return f.read().strip()
        except OSError:
            return f"(not built yet: {self.path})"
