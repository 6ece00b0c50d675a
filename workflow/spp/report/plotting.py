"""Figures of the report: one seaborn style, one colour per method, PNG + SVG written atomically.

Every figure function takes plain arrays / data frames (no file paths, no Snakemake), returns a
matplotlib Figure, and labels its axes with units, so the functions are testable on synthetic
inputs and reusable outside the workflow. Matplotlib is forced onto the Agg backend: figures are
rendered on headless machines (CI, SLURM nodes). Figures are made as `matplotlib.figure.Figure`
objects, never through pyplot's global figure registry, so several can be drawn at once in
threads of one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from spp.atomic import write_atomic  # noqa: E402
from spp.tables.table_specs import spec  # noqa: E402

# Methods of Figure 2, named as in the paper: {init}-{pruning}[-AI]. One hue per init+pruning
# pair; approximate isometry (AI) is drawn dashed in the same hue, so "with/without AI" pairs
# read as pairs. The dense reference is black.
_BASE_COLORS = {
    "VS-CS": "#1f77b4",
    "LDI-CS": "#d62728",
    "VS-Rand": "#2ca02c",
    "LDI-Rand": "#ff7f0e",
    "LDI-Mag": "#9467bd",
    "VS-Mag": "#8c564b",
    "LDI-Dense": "#000000",
    "VS-Dense": "#7f7f7f",
}
INIT_LABELS = {"vs-lecun": "VS", "vs-glorot": "VS", "vs-he": "VS", "orthogonal": "LDI", "sg": "SG"}
PRUNE_LABELS = {"snip": "CS", "random": "Rand", "magnitude": "Mag", "dense": "Dense"}

DPI = 110


def set_style() -> None:
    """The one style of every report figure: white grid, readable fonts at ~800 px width."""
    sns.set_theme(
        context="notebook",
        style="whitegrid",
        font_scale=0.95,
        rc={
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "svg.fonttype": "none",  # text stays text in the SVG (searchable, small)
        },
    )


def method_label(init: str, prune: str, ai: bool = False) -> str:
    """Paper-style method name, e.g. ("orthogonal", "snip", True) -> "LDI-CS-AI"."""
    if init not in INIT_LABELS:
        raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INIT_LABELS)}")
    if prune not in PRUNE_LABELS:
        raise ValueError(f"unknown pruning {prune!r}; allowed: {', '.join(PRUNE_LABELS)}")
    label = f"{INIT_LABELS[init]}-{PRUNE_LABELS[prune]}"
    return label + "-AI" if ai else label


def method_style(label: str) -> dict:
    """Colour and line style of a method label, stable across every figure."""
    base = label[:-3] if label.endswith("-AI") else label
    palette = sns.color_palette("tab10", 10).as_hex()
    color = _BASE_COLORS.get(base, palette[hash(base) % len(palette)])
    return {"color": color, "linestyle": "--" if label.endswith("-AI") else "-"}


def _method_order(labels: Sequence[str]) -> list[str]:
    known = [f"{b}{s}" for b in _BASE_COLORS for s in ("", "-AI")]
    present = set(labels)
    return [m for m in known if m in present] + sorted(present - set(known))


def save_figure(fig: Figure, *paths: str | os.PathLike) -> None:
    """Write ``fig`` to every path (format from the suffix), each atomically."""
    for path in paths:
        path = Path(path)
        if path.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ValueError(f"figure path {str(path)!r} must end in .png, .svg or .pdf")
        write_atomic(path, fig.savefig)  # the temporary file keeps the suffix: the format


# --------------------------------------------------------------------------- Figure 1


def figure1(
    patterns: Mapping[str, Mapping[float, Sequence[np.ndarray]]],
    sensitivities: Mapping[str, Sequence[np.ndarray]],
    title: str = "",
) -> Figure:
    """Figure 1: per-layer sparsity patterns (left) and connection sensitivities (right).

    patterns: activation -> sparsity (0-1) -> one boolean keep-mask (out x in) per layer.
    sensitivities: activation -> one array of connection sensitivities per layer (any shape).
    One block of rows per activation: a row per sparsity, a column per layer, white = kept,
    black = pruned as in the paper; next to it one box per layer of log10 sensitivity.
    """
    if not patterns:
        raise ValueError("figure1 needs at least one activation in `patterns`")
    if set(patterns) != set(sensitivities):
        raise ValueError(
            f"patterns and sensitivities name different activations: "
            f"{sorted(patterns)} vs {sorted(sensitivities)}"
        )
    acts = list(patterns)
    sparsities = sorted(next(iter(patterns.values())))
    n_layers = len(next(iter(patterns.values()))[sparsities[0]])
    for act in acts:
        if sorted(patterns[act]) != sparsities:
            raise ValueError(f"{act}: sparsities {sorted(patterns[act])} differ from {sparsities}")
        for s in sparsities:
            if len(patterns[act][s]) != n_layers:
                raise ValueError(
                    f"{act} at sparsity {s}: {len(patterns[act][s])} layers, expected {n_layers}"
                )
        if len(sensitivities[act]) != n_layers:
            raise ValueError(
                f"{act}: {len(sensitivities[act])} sensitivity arrays, "
                f"expected {n_layers} (one per layer)"
            )

    set_style()
    cell = 0.62
    n_rows = len(sparsities)
    fig = Figure(
        figsize=(cell * n_layers + 5.2, max(cell * n_rows + 1.1, 3.4) * len(acts)),
        layout="constrained",
    )
    blocks = np.atleast_1d(fig.subfigures(len(acts), 1, hspace=0.04))
    for block, act in zip(blocks, acts, strict=True):
        block.suptitle(
            f"{act} MLP: kept (white) and pruned (black) weights per layer and "
            "sparsity κ; connection sensitivity per layer",
            fontsize=10,
            fontweight="bold",
        )
        outer = block.add_gridspec(1, 2, width_ratios=[cell * n_layers, 3.9])
        grid = outer[0, 0].subgridspec(n_rows, n_layers, wspace=0.06, hspace=0.08)
        for r, s in enumerate(sparsities):
            for l_idx, keep in enumerate(patterns[act][s]):
                ax = block.add_subplot(grid[r, l_idx])
                keep = np.asarray(keep, dtype=float)
                ax.imshow(keep, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_linewidth(0.4)
                    spine.set_color("0.5")
                if r == 0:
                    rows, cols = keep.shape
                    ax.set_title(
                        f"layer {l_idx + 1}\n{rows}×{cols}", fontsize=7.5, fontweight="normal"
                    )
                if l_idx == 0:
                    ax.set_ylabel(
                        f"κ={100 * s:.0f}%", fontsize=8, rotation=0, ha="right", va="center"
                    )
        ax_cs = block.add_subplot(outer[0, 1])
        _sensitivity_boxes(ax_cs, sensitivities[act])
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _sensitivity_boxes(ax, per_layer: Sequence[np.ndarray]) -> None:
    arrays = [np.abs(np.asarray(arr, dtype=float).ravel()) for arr in per_layer]
    positive = [a[a > 0] for a in arrays if (a > 0).any()]
    floor = min(p.min() for p in positive) if positive else 1e-30
    # Exact zeros (dead units) cannot sit on a log axis: draw them at the smallest positive value
    # seen. Quartiles are invariant under the log, so boxes computed here are the log-scale boxes.
    arrays = [np.where(a > 0, a, floor) for a in arrays]
    ax.boxplot(
        arrays,
        whis=(1, 99),
        showfliers=False,
        patch_artist=True,
        widths=0.6,
        boxprops={"facecolor": "#9ecae1", "linewidth": 0.8},
        medianprops={"color": "#08306b", "linewidth": 1.2},
    )
    ax.set_yscale("log")
    ax.set_xticks(range(1, len(arrays) + 1), [str(i) for i in range(1, len(arrays) + 1)])
    ax.set_xlabel("layer")
    ax.set_ylabel("sensitivity |∂L/∂c| (log)")
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")


# --------------------------------------------------------------------------- Figure 2


def _lines(ax, df: pd.DataFrame, x: str, y: str) -> None:
    diverged = []
    for label in _method_order(df["method"].unique()):
        sub = df[df["method"] == label]
        if "diverged" in sub.columns and "seed" in sub.columns:
            bad = sub.loc[sub["diverged"].astype(bool), "seed"].unique()
            if len(bad):
                diverged.append(f"{label} ({len(bad)}/{sub['seed'].nunique()} seeds)")
                sub = sub[~sub["seed"].isin(bad)]
        stats = sub.groupby(x)[y].agg(["mean", "std", "count"]).reset_index()
        style = method_style(label)
        ax.plot(stats[x], stats["mean"], label=label, lw=1.6, **style)
        spread = stats["std"].fillna(0.0)
        if (stats["count"] > 1).any():
            ax.fill_between(
                stats[x],
                stats["mean"] - spread,
                stats["mean"] + spread,
                color=style["color"],
                alpha=0.12,
                lw=0,
            )
    if diverged:
        # Said in the panel, not the shared legend: a method may diverge in one panel only.
        ax.text(
            0.02,
            0.03,
            "diverged (not drawn): " + ", ".join(diverged),
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            fontsize=8,
            color="#a00000",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85},
        )


def _need_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; have {list(df.columns)}")


def _activation_panels(df: pd.DataFrame):
    """Figure 2's layout: one panel per activation, in order of appearance, same style."""
    set_style()
    acts = list(dict.fromkeys(df["activation"]))
    fig = Figure(figsize=(5.2 * len(acts), 4.0))
    axes = fig.subplots(1, len(acts), squeeze=False)
    panels = [(ax, act, df[df["activation"] == act]) for ax, act in zip(axes[0], acts, strict=True)]
    return fig, axes, panels


def figure2_signal(df: pd.DataFrame, statistic: str = "mean", title: str = "") -> Figure:
    """Figure 2a: a Jacobian singular-value statistic against sparsity, one panel per activation.

    df columns: activation, method (e.g. "LDI-CS-AI"), sparsity (0-1), seed, and ``statistic``
    (a column such as "mean"). Lines are the mean over seeds, bands +-1 std.
    """
    _need_columns(df, ["activation", "method", "sparsity", statistic], "figure2_signal")
    fig, axes, panels = _activation_panels(df)
    for ax, act, sub in panels:
        sub = sub.assign(kappa=lambda d: 100 * d["sparsity"])
        _lines(ax, sub, "kappa", statistic)
        ax.set_title(f"7-layer {act} MLP")
        ax.set_xlabel("sparsity κ (% of weights pruned)")
        ax.set_ylabel(f"{statistic} Jacobian singular value (input→logits)")
        ax.set_xlim(left=0)
    _shared_legend(fig, axes[0])
    if title:
        fig.suptitle(title, fontsize=11, y=1.03)
    return fig


def figure2_training(df: pd.DataFrame, value: str = "train_loss", title: str = "") -> Figure:
    """Figure 2b: training loss against iteration at one sparsity, one panel per activation.

    df columns: activation, method, iteration, seed, ``value``.
    """
    _need_columns(df, ["activation", "method", "iteration", value], "figure2_training")
    fig, axes, panels = _activation_panels(df)
    for ax, act, sub in panels:
        _lines(ax, sub, "iteration", value)
        ax.set_title(f"7-layer {act} MLP")
        ax.set_xlabel("training iteration (SGD steps)")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.set_ylabel("training loss (cross-entropy, nats)" if value == "train_loss" else value)
        ax.set_ylim(bottom=0)
    _shared_legend(fig, axes[0])
    if title:
        fig.suptitle(title, fontsize=11, y=1.03)
    return fig


def _shared_legend(fig: Figure, axes) -> None:
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend(
        [handles[lab] for lab in labels],
        labels,
        loc="upper center",
        ncol=min(len(labels), 6),
        bbox_to_anchor=(0.5, 0.0),
        fontsize=9,
    )
    fig.tight_layout()


# --------------------------------------------------------------------------- training curves


def training_curves(
    history: pd.DataFrame,
    panel: str,
    hue: str,
    title: str = "",
    values: Sequence[str] = ("train_loss", "test_error"),
) -> Figure:
    """Training curves of one table: a column of panels per value of ``panel`` (e.g. the
    architecture), one line per value of ``hue`` (e.g. the init), mean over seeds.

    history columns: iteration, ``panel``, ``hue``, and every name in ``values``.
    """
    _need_columns(history, ["iteration", panel, hue, *values], "training_curves")
    set_style()
    panels = list(dict.fromkeys(history[panel]))
    hues = list(dict.fromkeys(history[hue]))
    colors = dict(zip(hues, sns.color_palette("tab10", max(len(hues), 1)), strict=False))
    ncol = len(panels)
    fig = Figure(figsize=(max(3.1 * ncol, 5.0), 2.6 * len(values)))
    axes = fig.subplots(len(values), ncol, squeeze=False, sharex="col")
    ylabels = {
        "train_loss": "training loss (nats)",
        "val_error": "validation error (%)",
        "test_error": "test error (%)",
    }
    for c, p in enumerate(panels):
        sub = history[history[panel] == p]
        for r, value in enumerate(values):
            ax = axes[r, c]
            for h in hues:
                line = sub[sub[hue] == h].groupby("iteration")[value].mean()
                if line.empty:
                    continue
                ax.plot(line.index, line.values, color=colors[h], lw=1.4, label=str(h))
            if r == 0:
                ax.set_title(str(p), fontsize=10)
            if r == len(values) - 1:
                ax.set_xlabel("iteration (SGD steps)")
                ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            if c == 0:
                ax.set_ylabel(ylabels.get(value, value))
    _shared_legend(fig, axes[0])
    if title:
        fig.suptitle(title, fontsize=11, y=1.02)
    return fig


# Table 5's runs per cell, as the paper's column headers name them.
ROLE_LABELS = {"sup": "CS, supervised", "unsup": "CS, unsupervised (uniform)", "rand": "random"}


def table_training_curves(table: str, history: pd.DataFrame, title: str = "") -> Figure:
    """Training curves of one paper table: panels and lines as the table's columns and rows.

    history: one row per (cell, run role, seed, evaluation) with the table's key columns, a
    ``role`` column ("main", or sup/unsup/rand in Table 5) and the training-history columns.
    """
    panel_keys, hue = spec(table).curves
    _need_columns(history, [*panel_keys, hue], f"training curves of {table}")
    df = history.copy()
    if table == "table5":
        from spp.tables.experiments import DATASET_LABELS

        for c in ("prune", "train"):
            df[c] = df[c].map(lambda d: DATASET_LABELS.get(d, d))
        df["role"] = df["role"].map(lambda r: ROLE_LABELS.get(r, r))
    if panel_keys:
        sep = " → " if table == "table5" else " "
        df["_panel"] = df[list(panel_keys)].astype(str).agg(sep.join, axis=1)
        if table == "table4":
            df["_panel"] = "K=" + df["_panel"]
    else:
        df["_panel"] = ""
    return training_curves(df, "_panel", hue, title=title)
