"""Per-seed metric files -> one table per paper table, measured beside published.

A table row is a cell of the paper's table. For every quantity ``q`` it holds ``q_mean``,
``q_std`` (sample standard deviation over seeds, ddof=1; NaN for one seed) and ``q_n`` (number
of seeds with a value), and, where the paper prints a number, ``paper_q`` beside them. The paper
reports the minimum test error over evaluations (selection on the test set): that is
``error_paper_protocol``, compared with ``paper_error_paper_protocol``. ``error`` is the honest
one (test error at the best validation evaluation) and has no paper value. Table 1 has both for
two trainings of each mask: from the pruning init (the code as published) and, suffixed
``_reinit``, from a variance-scaling init (``table1.reinit``); the paper's one error column stands
beside each.

Inputs per seed: the signal JSON (Jacobian singular values, orthogonality score, per-layer
sparsity) and the training ``metrics.json`` (the summary of `spp.train.training.train`).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from spp import paths
from spp.atomic import write_text
from spp.tables.formatting import STYLE, fmt_mean_std, fmt_value
from spp.tables.table_specs import ERRORS, spec

# ------------------------------------------------------------------------------- reading


def _load_json(path: Path) -> dict:
    try:
        with open(path) as f:
            record = json.load(f)  # accepts Infinity / NaN, as written by json.dump
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); "
                         + _FIX.format(folder=_stage_folder(path))) from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}; "
                         + _FIX.format(folder=_stage_folder(path)))
    return record


def _stage_folder(path: Path) -> Path:
    """The output folder Snakemake tracks: a training cell's (above seed<k>/), or the file's."""
    return path.parent.parent if path.name == paths.METRICS else path.parent


_FIX = ("the per-seed files are written by the workflow, never by hand: delete the folder "
        "{folder} and rerun, Snakemake rebuilds it")
ERROR_KEYS = ("error", "error_paper_protocol", "final_error")


def check_metrics(record: dict, path: Path) -> dict:
    """A training summary as spp.train.training writes it: errors in [0, 100] (None only for a run
    that diverged before its first evaluation), ``diverged`` a bool."""
    problems = []
    if not isinstance(record.get("diverged"), bool):
        problems.append(f"'diverged' must be true or false, got {record.get('diverged')!r}")
    for key in ERROR_KEYS:
        v = record.get(key, "missing")
        if v is None and record.get("diverged") is True:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
            problems.append(f"{key!r} must be a test error in [0, 100], got {v!r}")
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}; "
                         + _FIX.format(folder=_stage_folder(path)))
    return record


def check_signal(record: dict, path: Path) -> dict:
    if not isinstance(record.get("jacobian", {}), dict):
        raise ValueError(f"{path}: 'jacobian' must be an object; "
                         + _FIX.format(folder=_stage_folder(path)))
    return record


def seed_metrics(signal: dict | None, train: dict | None) -> dict[str, float]:
    """Flatten one seed's signal and training records to quantity -> number."""
    out: dict[str, float] = {}
    if signal:
        jac = signal.get("jacobian") or {}
        for key, name in (("mean", "jsv_mean"), ("std", "jsv_std"), ("max", "jsv_max"),
                          ("min", "jsv_min"), ("condition_number", "jsv_cn")):
            if key in jac:
                out[name] = float(jac[key])
        if "orthogonality_score" in signal:
            out["os"] = float(signal["orthogonality_score"])
        for i, v in enumerate((signal.get("layer_sparsity") or {}).values(), start=1):
            out[f"sparsity_l{i}"] = float(v)
    if train:
        diverged = bool(train.get("diverged", False))
        # A diverged seed's errors are those of its last good evaluation, mid-training: never
        # averaged with the seeds that trained (it is counted in diverged_n, shown beside).
        for key in () if diverged else ("error", "error_paper_protocol", "final_error"):
            if key in train and train[key] is not None:
                out[key] = float(train[key])
        out["diverged"] = float(diverged)
    return out


def role_of(quantity: str) -> str:
    """The run role a quantity comes from: its suffix (``_reinit``, ``_sup``, ...) or main."""
    for role in ("reinit", "unsup", "sup", "rand"):
        if quantity.endswith(f"_{role}"):
            return role
    return "main"


def diverged_column(role: str) -> str:
    """Column counting a role's diverged seeds (ends in ``_n``: a count, not a cell label)."""
    return "diverged_n" if role == "main" else f"diverged_{role}_n"


def read_run(run: dict, strict: bool = True) -> dict[int, dict[str, float]]:
    """Per-seed quantities of one run ({"signal": dir, "train": dir, "seeds": [...]}).

    Every expected seed's files must be there and well-formed, else a ValueError names the file
    and the fix: a lost or damaged file never silently lowers n. ``strict=False`` (a table of a
    run still in progress): missing files are cells "not run"; damaged ones still raise.
    """
    per_seed = {}
    for seed in run["seeds"]:
        sig = paths.seed_signal(run["signal"], seed) if run.get("signal") else None
        met = paths.seed_metrics(run["train"], seed) if run.get("train") else None
        records = []
        for path, check in ((sig, check_signal), (met, check_metrics)):
            if path is None:
                records.append(None)
            elif path.is_file():
                records.append(check(_load_json(path), path))
            elif strict:
                raise ValueError(f"{path} is missing: seed {seed} of this cell was expected; "
                                 + _FIX.format(folder=_stage_folder(path)))
            else:
                records.append(None)
        per_seed[int(seed)] = seed_metrics(*records)
    return per_seed


# ------------------------------------------------------------------------------- statistics


def stats(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1) and count of the non-NaN values; infinities propagate."""
    vals = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(np.mean(vals))
    if n == 1 or not np.all(np.isfinite(vals)):
        std = math.nan
    else:
        std = float(np.std(vals, ddof=1))
    return mean, std, n


def row_quantities(table: str, runs: dict[str, dict[int, dict[str, float]]]) -> dict[str, list]:
    """Quantity -> per-seed values for one row; Table 5 combines its sup/unsup/rand runs."""
    per_q: dict[str, list] = {}
    if table == "table5":
        for role, seeds in runs.items():
            for q in ERRORS:
                per_q[f"{q}_{role}"] = [m.get(q, math.nan) for m in seeds.values()]
        if "sup" in runs and "unsup" in runs:
            common = sorted(set(runs["sup"]) & set(runs["unsup"]))
            per_q["delta"] = [runs["unsup"][s].get("error_paper_protocol", math.nan)
                              - runs["sup"][s].get("error_paper_protocol", math.nan)
                              for s in common]
        return per_q
    seeds = runs["main"]
    names = sorted({q for m in seeds.values() for q in m})
    for q in names:
        per_q[q] = [m.get(q, math.nan) for m in seeds.values()]
    if "init" in runs:  # Jacobian of the network before pruning (Table 1)
        for q in ("jsv_mean", "jsv_std", "jsv_max", "jsv_min", "jsv_cn"):
            per_q[q] = [m.get(q, math.nan) for m in runs["init"].values()]
    if "reinit" in runs:  # Table 1: the same masks trained from a variance-scaling init
        for q in ERRORS:
            per_q[f"{q}_reinit"] = [m.get(q, math.nan) for m in runs["reinit"].values()]
    return per_q


def _ordered(table: str, available: Sequence[str]) -> list[str]:
    out = []
    for q in spec(table).quantities:
        if q.endswith("*"):
            matches = [a for a in available if a.startswith(q[:-1])]
            out += sorted(matches, key=lambda a: int(a[len(q) - 1:]))
        else:  # always present, so a table keeps its shape when a run is missing ("not run")
            out.append(q)
    return out


# ------------------------------------------------------------------------------- paper


def load_paper(path: str | os.PathLike) -> pd.DataFrame:
    """The paper's published numbers: columns table, row, col, quantity, value, note."""
    df = pd.read_csv(path, dtype={"row": str, "col": str}, keep_default_na=False,
                     na_values={"value": [""]})
    need = {"table", "row", "col", "quantity", "value"}
    if not need <= set(df.columns):
        raise ValueError(f"{path}: columns {sorted(need - set(df.columns))} missing")
    return df


def paper_values(paper: pd.DataFrame, table: str, key: Sequence[str]) -> dict[str, float]:
    sel = paper[(paper["table"] == table) & (paper["row"] == key[0]) & (paper["col"] == key[1])]
    return {r.quantity: float(r.value) for r in sel.itertuples()}


# ------------------------------------------------------------------------------- tables


def build_table(table: str, rows: list[dict], paper: pd.DataFrame | None = None,
                preset: str = "", reader=read_run) -> pd.DataFrame:
    """One DataFrame row per paper-table cell: keys, then q_mean, q_std, q_n, paper_q per q."""
    records = []
    for row in rows:
        runs = {role: reader(run) for role, run in row["runs"].items()}
        per_q = row_quantities(table, runs)
        key = row.get("paper_key")
        pv = paper_values(paper, table, key) if paper is not None and key else {}
        rec = {"preset": preset, **row["keys"]}
        main = runs.get("main", {})
        if any(k.startswith("sparsity_l") for m in main.values() for k in m):
            # a layer with every weight pruned cuts the signal path: the mask disconnects it
            rec["disconnected_n"] = int(sum(
                max((v for k, v in m.items() if k.startswith("sparsity_l")), default=0.0) >= 1.0
                for m in main.values()))
        for role, seeds in runs.items():  # seeds whose loss became NaN/inf: counted, shown
            if role != "init" and row["runs"][role].get("train"):
                rec[diverged_column(role)] = int(sum(m.get("diverged", 0.0) for m in
                                                     seeds.values()))
        for q in _ordered(table, list(per_q)):
            mean, std, n = stats(per_q.get(q, []))
            rec[f"{q}_mean"], rec[f"{q}_std"], rec[f"{q}_n"] = mean, std, n
            if paper is not None:
                rec[f"paper_{q}"] = pv.get(q, math.nan)
        for q, v in pv.items():  # paper numbers about the cell itself (e.g. sparsity, params)
            rec.setdefault(f"paper_{q}", v)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def key_columns(df: pd.DataFrame) -> list[str]:
    suffixes = ("_mean", "_std", "_n")
    return [c for c in df.columns if not c.startswith("paper_") and not c.endswith(suffixes)]


def quantities(df: pd.DataFrame) -> list[str]:
    return [c[: -len("_mean")] for c in df.columns
            if c.endswith("_mean") and not c.startswith("paper_")]


def diverged_seeds(row: pd.Series, q: str) -> int:
    """How many seeds of the run behind quantity ``q`` diverged (0 for signal quantities)."""
    if not (q.startswith("error") or q == "delta"):
        return 0
    roles = ("sup", "unsup") if q == "delta" else (role_of(q),)
    return int(sum(row.get(diverged_column(r), 0) or 0 for r in roles
                   if not pd.isna(row.get(diverged_column(r), 0))))


def cell_text(row: pd.Series, q: str) -> str:
    return fmt_mean_std(row.get(f"{q}_mean"), row.get(f"{q}_std"), row.get(f"{q}_n"),
                        diverged_seeds(row, q), q)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable frame: keys, then for each quantity 'ours' and (if any) 'paper'."""
    out = df[key_columns(df)].copy()
    for c in out.columns:  # label columns: sparsities and widths short, counts with separators
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = [fmt_value(v, c) if "sparsity" in c else f"{v:.4g}" for v in out[c]]
        elif "params" in c:
            out[c] = [fmt_value(v, c) for v in out[c]]
    for q in quantities(df):
        out[q] = [cell_text(r, q) for _, r in df.iterrows()]
        if f"paper_{q}" in df.columns and df[f"paper_{q}"].notna().any():
            out[f"paper {q}"] = [fmt_value(v, q) for v in df[f"paper_{q}"]]
    if "disconnected_n" in df.columns and (df["disconnected_n"].fillna(0) > 0).any():
        out["disconnected"] = [f"{int(v)} seeds: a layer fully pruned" if v else "no"
                               for v in df["disconnected_n"].fillna(0)]
    for c in df.columns:  # paper values without a measured counterpart
        if c.startswith("paper_") and c[len("paper_"):] not in quantities(df):
            out[c.replace("_", " ", 1)] = [fmt_value(v, c) for v in df[c]]
    return out


def to_markdown(df: pd.DataFrame, title: str = "", note: str = "") -> str:
    disp = display_frame(df)
    lines = [f"# {title}", ""] if title else []
    if note:
        lines += [f"_{note}_", ""]
    cols = [str(c) for c in disp.columns]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for _, r in disp.iterrows():
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in r.values) + " |")
    return "\n".join(lines) + "\n"


def to_html(df: pd.DataFrame, title: str = "", note: str = "") -> str:
    disp = display_frame(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in disp.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values) + "</tr>"
        for _, r in disp.iterrows()
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        f"{STYLE}</head><body>"
        f"<h2>{html.escape(title)}</h2><p><em>{html.escape(note)}</em></p>"
        f"<table class='spp'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "<p>Values: mean ± sample std over seeds (n). error_paper_protocol = minimum test error "
        "over evaluations (the paper's protocol); error = test error at the best validation "
        "evaluation.</p></body></html>\n"
    )


def write_table(df: pd.DataFrame, csv: str, md: str | None = None, html_path: str | None = None,
                title: str = "", note: str = "") -> None:
    """CSV (all columns, full precision) and Markdown / HTML renderings, written atomically."""
    write_text(csv, df.to_csv(index=False))
    if md:
        write_text(md, to_markdown(df, title, note))
    if html_path:
        write_text(html_path, to_html(df, title, note))


def plot_figure3(df: pd.DataFrame, png: str, svg: str, note: str = "") -> None:
    """Error per sculpted model (mean ± std over seeds), dense base first, in the report's style.

    Drawn on a bare ``Figure`` (no pyplot's global state), as every figure of the report is.
    """
    from matplotlib.figure import Figure

    from spp.report.plotting import save_figure, set_style

    set_style()
    q = "error_paper_protocol"
    fig = Figure(figsize=(7.2, 4.0))
    ax = fig.subplots()
    # One line per part of the name ("Equivalent 1" / "(wider)"): side by side they overlap.
    labels = [f"{str(m).replace(' (', chr(10) + '(')}\n{s:.1%} pruned"
              for m, s in zip(df["model"], df["sparsity"], strict=True)]
    ax.bar(range(len(df)), df[f"{q}_mean"], yerr=df[f"{q}_std"].fillna(0), capsize=4,
           color=["#888888"] + ["#1f77b4"] * (len(df) - 1))
    if f"paper_{q}" in df.columns and df[f"paper_{q}"].notna().any():
        ax.scatter(range(len(df)), df[f"paper_{q}"], color="k", marker="x", zorder=3,
                   label="paper")
        ax.legend()
    ax.set_xticks(range(len(df)), labels, fontsize=8)
    ax.set_ylabel("test error (%)\nmin over evaluations")
    ax.set_title("Architecture sculpting: all models have the base's parameter count",
                 fontsize=10)
    if note:
        fig.text(0.01, -0.1, note, fontsize=7, wrap=True, va="top")
    save_figure(fig, png, svg)
