"""One spec per table: what the workflow knows about each of the paper's tables, in one place.

A spec names the table's rows (the grid builder of `spp.tables.experiments`), its quantities in
display order, its title from the config that ran, the paper's layout of it, how its training
curves are laid out, whether it reads the signal stage, the setup the paper used (a cell gets the
paper's value only when its table keeps it), and its config check. Aggregation, the paper-layout
pages, the training-curve figures, the summary, the evidence pages and the config validation all
read it. A new table is its spec here, its config block (schema, presets), its paper values
(config/paper_results.csv) and its caption (its section of report/tables.rst).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from spp.tables import experiments as X

ERRORS = ("error_paper_protocol", "error")


@dataclass(frozen=True)
class Layout:
    """The table as the paper prints it: which key columns go down, which across, and which
    quantities (with their headers) fill a cell."""

    rows: tuple[str, ...]  # key columns that name a row (first one shown first)
    cols: tuple[str, ...]  # key columns that name a column group (() none)
    values: tuple[tuple[str, str], ...]  # (quantity, header) inside each column group
    lower_is_better: tuple[str, ...] = ("error_paper_protocol",)  # bold: the column's lowest


@dataclass(frozen=True)
class TableSpec:
    name: str
    rows: Callable[..., list[dict]]  # config -> rows (spp.tables.experiments; see its grid section)
    quantities: tuple[str, ...]  # aggregated columns, display order ("sparsity_l*": per layer)
    title: Callable[[dict], str]  # the table's config block -> its title
    layout: Layout
    curves: tuple[tuple[str, ...], str]  # training curves: (panel key columns, line key column)
    check: Callable[[dict, X.Checks], None]  # config check beyond the schema, before any job
    datasets: Callable[[dict], set[str]] = field(default=lambda t: {t["dataset"]})
    signal: bool = False  # reports Jacobian / orthogonality / sparsity: reads the signal stage
    paper_setup: dict = field(default_factory=dict)  # the settings the paper's table used


def _pct(x: float) -> str:
    return f"{100 * float(x):.10g}%"


# ------------------------------------------------------------------------------- config checks


def _check_table1(t: dict, c: X.Checks) -> None:
    c.arch("table1.arch", t["arch"])
    c.dataset("table1.dataset", t["dataset"])
    c.init("table1 (scaled Gaussian)", "sg")
    if t.get("reinit"):
        c.init("table1.reinit", t["reinit"])
    for g in t["gammas"]:
        if not g > 0:
            raise ValueError(f"table1.gammas: {g} is not a positive variance")
    from spp.pruning.keep import kept_count

    n = X.count_prunable(t["arch"], t["dataset"], None, 1.0)
    if kept_count(n, t["sparsity"]) == 0:
        raise ValueError(f"table1.sparsity: {t['sparsity']} keeps 0 of the {n:,} prunable "
                         f"parameters of {t['arch']}: nothing would be trained; use a "
                         f"sparsity below {1 - 0.5 / n:.7g}")
    c.method("snip (connection sensitivity)", "snip")


def _check_rows(name: str, t: dict, c: X.Checks) -> None:
    for label in t["rows"]:
        scheme, _ = X.ROW_INITS[label]
        c.init(f"{name}.rows ({label})", scheme)
    c.method("snip (connection sensitivity)", "snip")


def _check_table2(t: dict, c: X.Checks) -> None:
    names = [col["name"] for col in t["columns"]]
    for i, col in enumerate(t["columns"]):
        c.arch(f"table2.columns[{i}].arch", col["arch"])
        c.dataset(f"table2.columns[{i}].dataset", col["dataset"])
    for name in (t.get("unsupervised_row") or {}).get("columns", []):
        if name not in names:
            raise ValueError(f"table2.unsupervised_row.columns: {name!r} is not a column "
                             f"name of table2.columns; valid: {', '.join(names)}")
    _check_rows("table2", t, c)


def _check_table3(t: dict, c: X.Checks) -> None:
    c.dataset("table3.dataset", t["dataset"])
    for i, net in enumerate(t["networks"]):
        c.arch(f"table3.networks[{i}].arch", net["arch"])
    _check_rows("table3", t, c)


def _check_table4(t: dict, c: X.Checks) -> None:
    c.dataset("table4.dataset", t["dataset"])
    c.init("table4.init", t["init"])
    for k in t["depths"]:
        c.arch("table4.depths", f"mlp-{k}-{t['activation']}")
    c.method("snip (connection sensitivity)", "snip")


def _check_table5(t: dict, c: X.Checks) -> None:
    c.arch("table5.arch", t["arch"])
    c.init("table5.init", t["init"])
    for i, r in enumerate(t["rows"]):
        c.dataset(f"table5.rows[{i}].prune", r["prune"])
        c.dataset(f"table5.rows[{i}].train", r["train"])
        if X.DATASET_SHAPES[r["prune"]] != X.DATASET_SHAPES[r["train"]]:
            raise ValueError(f"table5.rows[{i}]: prune on {r['prune']!r} and train on "
                             f"{r['train']!r} need the same input shape and classes")
    if t.get("random", True):
        c.method("table5.random", "random")
    c.method("snip (connection sensitivity)", "snip")


def _check_figure3(t: dict, c: X.Checks) -> None:
    c.dataset("figure3.dataset", t["dataset"])
    c.init("figure3.init", t["init"])
    c.method("figure3.method", t["method"])
    c.arch("figure3.base.arch", t["base"]["arch"])
    for i, v in enumerate(t["variants"]):
        c.arch(f"figure3.variants[{i}].arch", v["arch"])


# ------------------------------------------------------------------------------- the specs

SPECS: dict[str, TableSpec] = {
    "table1": TableSpec(
        name="table1",
        rows=X.table1_rows,
        quantities=("jsv_mean", "jsv_std", "jsv_cn", "sparsity_l*", *ERRORS,
                    "error_paper_protocol_reinit", "error_reinit"),
        title=lambda t: (f"Table 1: Jacobian singular values and pruned sparsity per layer, "
                         f"{t['arch']} on {t['dataset']}, SG(gamma) init, "
                         f"{_pct(t['sparsity'])} sparsity"),
        layout=Layout(
            rows=("init",),
            cols=(),
            values=(
                ("jsv_mean", "JSV mean"),
                ("jsv_std", "JSV std"),
                ("jsv_cn", "JSV CN"),
                *((f"sparsity_l{i}", f"sparsity L{i}") for i in range(1, 8)),
                ("error_paper_protocol", "Error, trained from SG (%)"),
                ("error_paper_protocol_reinit", "Error, trained from VS-L (%)"),
            ),
        ),
        curves=((), "init"),
        check=_check_table1,
        signal=True,
        paper_setup={"dataset": "mnist", "arch": "mlp-7-tanh", "loss": "supervised",
                     "sparsity": 0.9},
    ),
    "table2": TableSpec(
        name="table2",
        rows=X.table2_rows,
        quantities=("os", *ERRORS),
        title=lambda t: f"Table 2: orthogonality score (OS) and error, {_pct(t['sparsity'])} "
                        "sparsity",
        layout=Layout(rows=("init",), cols=("network",),
                      values=(("os", "OS"), ("error_paper_protocol", "Error"))),
        curves=(("network",), "init"),
        check=_check_table2,
        datasets=lambda t: {c["dataset"] for c in t["columns"]},
        signal=True,
        paper_setup={"sparsity": 0.9},
    ),
    "table3": TableSpec(
        name="table3",
        rows=X.table3_rows,
        quantities=ERRORS,
        title=lambda t: f"Table 3: error with other activations, {_pct(t['sparsity'])} sparsity",
        layout=Layout(rows=("init",), cols=("network", "activation"),
                      values=(("error_paper_protocol", "Error"),)),
        curves=(("network", "activation"), "init"),
        check=_check_table3,
        paper_setup={"sparsity": 0.9},
    ),
    "table4": TableSpec(
        name="table4",
        rows=X.table4_rows,
        quantities=ERRORS,
        title=lambda t: (f"Table 4: unsupervised pruning of K-layer {t['activation']} MLPs on "
                         f"{t['dataset']}, {_pct(t['sparsity'])} sparsity, {t['init']} init"),
        layout=Layout(rows=("loss", "supervised"), cols=("K",),
                      values=(("error_paper_protocol", "Error"),)),
        curves=(("K",), "loss"),
        check=_check_table4,
        paper_setup={"dataset": "mnist", "activation": "tanh", "init": "orthogonal",
                     "sparsity": 0.9},
    ),
    "table5": TableSpec(
        name="table5",
        rows=X.table5_rows,
        quantities=("error_paper_protocol_sup", "error_paper_protocol_unsup", "delta",
                    "error_paper_protocol_rand", "error_sup", "error_unsup", "error_rand"),
        title=lambda t: (f"Table 5: transfer of sparsity, {t['arch']}, {_pct(t['sparsity'])} "
                         f"sparsity, {t['init']} init"),
        layout=Layout(
            rows=("category", "prune", "train"),
            cols=(),
            values=(
                ("error_paper_protocol_sup", "Error sup."),
                ("error_paper_protocol_unsup", "Error unsup."),
                ("delta", "Δ (unsup. − sup.)"),
                ("error_paper_protocol_rand", "Error rand"),
            ),
            # Rows mix MNIST and Fashion-MNIST errors: a column minimum means nothing, no bold.
            lower_is_better=(),
        ),
        curves=(("prune", "train"), "role"),
        check=_check_table5,
        datasets=lambda t: {r["train"] for r in t["rows"]} | {r["prune"] for r in t["rows"]},
        paper_setup={"arch": "lenet300", "init": "orthogonal", "sparsity": 0.97,
                     "supervised_loss": "supervised", "unsupervised_loss": "unif"},
    ),
    "figure3": TableSpec(
        name="figure3",
        rows=X.figure3_rows,
        quantities=ERRORS,
        title=lambda t: "Figure 3: architecture sculpting (same number of parameters)",
        layout=Layout(rows=("model", "sparsity"), cols=(),
                      values=(("error_paper_protocol", "Error"),)),
        curves=((), "model"),
        check=_check_figure3,
    ),
}

# Short display names of the quantity columns (the CSV name stays in a cell's tooltip).
QUANTITY_LABELS = {
    "jsv_mean": "JSV mean",
    "jsv_std": "JSV std",
    "jsv_cn": "JSV cond. number",
    "os": "OS",
    "delta": "Δ unsup. − sup.",
    "error_paper_protocol": "error %",
    "error_paper_protocol_reinit": "error % (VS-L init)",
    "error_paper_protocol_sup": "error % sup.",
    "error_paper_protocol_unsup": "error % unsup.",
    "error_paper_protocol_rand": "error % rand",
}


def spec(table: str) -> TableSpec:
    if table not in SPECS:
        raise ValueError(f"unknown table {table!r}; allowed: {', '.join(SPECS)}")
    return SPECS[table]


def table_title(table: str, cfg: dict) -> str:
    """The title of a table as the config that ran it says."""
    return spec(table).title(cfg.get(table, {}))


def quantity_label(q: str) -> str:
    if q in QUANTITY_LABELS:
        return QUANTITY_LABELS[q]
    if q.startswith("sparsity_l"):
        return f"sparsity layer {q[len('sparsity_l') :]}"
    return q


def follows_paper(table: str, t: dict) -> bool:
    """True when table config ``t`` keeps every setting the paper's table was made with."""
    return all(t.get(k) == v for k, v in spec(table).paper_setup.items())
