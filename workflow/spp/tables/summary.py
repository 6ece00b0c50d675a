"""Paper versus ours, cell by cell, with a verdict whose rule is stated next to it.

A reader opens the report to learn "did it reproduce?". This module turns the aggregated table
CSVs (one row per cell of a paper table; for each quantity ``q`` the columns ``q_mean``, ``q_std``,
``q_n`` and the paper's ``paper_q``) into one long summary table with a verdict per value:

- ``reproduced``: |ours - paper| <= max(2 standard errors, the quantity's tolerance),
  standard error = std / sqrt(n). Tolerances are absolute (``abs``, e.g. 0.5 error points),
  relative (``rel``, a fraction of the paper's value) or in orders of magnitude (``log10``, for
  Jacobian statistics spanning 1e-7 ... 1e11);
- ``not reproduced``: outside that band;
- ``diverged``: at least one seed of the run behind an error diverged (its loss became NaN or
  inf); the mean over the others is shown, never called a reproduction;
- ``not run``: no measurement (missing, or n = 0);
- ``not comparable``: measured, but by a preset that does not follow the paper's protocol (the
  quick preset). Its numbers are shown, never called a reproduction.
"""

from __future__ import annotations

import fnmatch
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spp.tables.aggregate import diverged_seeds
from spp.tables.formatting import STYLE, fmt_mean_std, fmt_value
from spp.tables.table_specs import quantity_label

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"
NOT_COMPARABLE = "not comparable"
DIVERGED = "diverged"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, DIVERGED, NOT_RUN, NOT_COMPARABLE)

SUMMARY_COLUMNS = (
    "table", "cell", "quantity", "paper", "mean", "std", "n", "diverged", "diff", "tolerance",
    "verdict",
)  # fmt: skip


@dataclass(frozen=True)
class Tolerance:
    """How far from the paper still counts as reproduced, besides 2 standard errors."""

    abs: float = 0.0
    rel: float = 0.0
    log10: float = 0.0

    def __post_init__(self):
        for name in ("abs", "rel", "log10"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"tolerance {name}={value!r} must be a finite number >= 0")

    def describe(self) -> str:
        parts = []
        if self.abs:
            parts.append(f"±{self.abs:g}")
        if self.rel:
            parts.append(f"±{100 * self.rel:g}%")
        if self.log10:
            parts.append(f"×/÷{10**self.log10:.3g}")
        return " or ".join(parts) if parts else "2 SE only"

    def accepts(self, ours: float, paper: float) -> bool:
        if math.isinf(paper) or math.isinf(ours):
            return ours == paper
        diff = abs(ours - paper)
        if diff <= self.abs or diff <= self.rel * abs(paper):
            return True
        if self.log10 and ours > 0 and paper > 0:
            return abs(math.log10(ours) - math.log10(paper)) <= self.log10
        return False


def tolerance_for(quantity: str, tolerances: Mapping[str, Mapping | Tolerance]) -> Tolerance:
    """The tolerance of the first pattern (fnmatch, in the mapping's order) matching quantity."""
    for pattern, tol in tolerances.items():
        if fnmatch.fnmatchcase(quantity, pattern):
            if isinstance(tol, Tolerance):
                return tol
            unknown = set(tol) - {"abs", "rel", "log10"}
            if unknown:
                raise ValueError(
                    f"tolerance for {pattern!r} has unknown keys {sorted(unknown)}; "
                    "allowed: abs, rel, log10"
                )
            return Tolerance(**tol)
    return Tolerance()


def verdict(
    paper: float, mean: float, std: float, n: float, tol: Tolerance, comparable: bool = True
) -> str:
    """One value's verdict (see the module docstring for the rule)."""
    if mean is None or n is None or pd.isna(mean) or pd.isna(n) or n <= 0:
        return NOT_RUN
    if not comparable:
        return NOT_COMPARABLE
    if paper is None or pd.isna(paper):
        raise ValueError("verdict needs the paper's value; got none")
    if tol.accepts(float(mean), float(paper)):
        return REPRODUCED
    se = float(std) / math.sqrt(float(n)) if n > 1 and not pd.isna(std) else 0.0
    if math.isfinite(mean) and math.isfinite(paper) and abs(mean - paper) <= 2 * se:
        return REPRODUCED
    return NOT_REPRODUCED


def quantities(df: pd.DataFrame) -> list[str]:
    """Quantities of an aggregated table: names q with both ``q_mean`` and ``paper_q`` columns."""
    cols = list(df.columns)
    return [
        c[len("paper_") :]
        for c in cols
        if c.startswith("paper_") and f"{c[len('paper_') :]}_mean" in cols
    ]


def key_columns(df: pd.DataFrame) -> list[str]:
    """Columns that name a cell: everything that is not a statistic or a paper value."""
    stats = ("_mean", "_std", "_n", "_sem")
    return [
        c
        for c in df.columns
        if not c.endswith(stats)
        and not c.startswith("paper_")
        and c not in ("n", "n_seeds", "table", "preset")
    ]


# Key columns that repeat what another key already says (gamma is in Table 1's init label,
# the dataset in Table 2's network name, "supervised" in Table 4's loss name).
_REDUNDANT_KEYS = ("gamma", "dataset", "supervised", "arch", "width", "params_total", "params_kept")


def cell_label(row: pd.Series, keys: Sequence[str]) -> str:
    """A short name of a table cell, e.g. "LDI-AI, ResNet32" or "GT, K=3"."""
    parts = []
    for k in keys:
        v = row[k]
        if k in _REDUNDANT_KEYS or isinstance(v, (bool, np.bool_)) or pd.isna(v):
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            parts.append(f"{k}={float(v):g}")
        else:
            parts.append(str(v))
    return ", ".join(parts)


def _seed_count(row: pd.Series, q: str) -> float:
    for col in (f"{q}_n", "n_seeds", "n"):
        if col in row.index and not pd.isna(row[col]):
            return float(row[col])
    return float("nan")


def summarize(
    tables: Mapping[str, pd.DataFrame],
    tolerances: Mapping[str, Mapping | Tolerance],
    comparable: bool,
) -> pd.DataFrame:
    """One row per (table cell, quantity) that has a published paper value."""
    rows = []
    for name, df in tables.items():
        keys = key_columns(df)
        for q in quantities(df):
            tol = tolerance_for(q, tolerances)
            for _, row in df.iterrows():
                paper = row[f"paper_{q}"]
                if pd.isna(paper):
                    continue  # the paper has no number for this cell (e.g. our extra rows)
                mean = row[f"{q}_mean"]
                std = row.get(f"{q}_std", float("nan"))
                n = _seed_count(row, q)
                v = verdict(paper, mean, std, n, tol, comparable)
                div = diverged_seeds(row, q)
                if div and v != NOT_COMPARABLE:
                    v = DIVERGED
                diff = float(mean) - float(paper) if v != NOT_RUN else float("nan")
                if math.isinf(paper) and not pd.isna(mean) and mean == paper:
                    diff = 0.0
                rows.append(
                    {
                        "table": name,
                        "cell": cell_label(row, keys),
                        "quantity": q,
                        "paper": float(paper),
                        "mean": float(mean) if not pd.isna(mean) else float("nan"),
                        "std": float(std) if not pd.isna(std) else float("nan"),
                        "n": n,
                        "diverged": div,
                        "diff": diff,
                        "tolerance": f"2 SE or {tol.describe()}",
                        "verdict": v,
                    }
                )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def verdict_counts(summary: pd.DataFrame) -> dict[str, int]:
    counts = summary["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


# --------------------------------------------------------------------------- formatting


_VERDICT_CLASS = {
    REPRODUCED: "spp-ok",
    NOT_REPRODUCED: "spp-bad",
    DIVERGED: "spp-bad",
    NOT_RUN: "spp-na",
    NOT_COMPARABLE: "spp-na",
}

def summary_html(
    summary: pd.DataFrame, preset: str, comparable: bool, rule: str, note: str = ""
) -> str:
    """The summary as a self-contained HTML fragment (style included), banner first."""
    counts = verdict_counts(summary)
    out = [STYLE, '<div class="spp-summary">']
    if not comparable:
        out.append(
            f'<div class="spp-banner">Preset "{html.escape(preset)}": not the paper\'s protocol. '
            "These numbers test the pipeline; they are not a reproduction, so no cell is "
            "called reproduced. Run config/paper.yaml for verdicts.</div>"
        )
    if note:
        out.append(f"<p>{html.escape(note)}</p>")
    out.append(
        "<p><b>Verdicts:</b> "
        + ", ".join(f"{v}: {c}" for v, c in counts.items() if c or v != NOT_COMPARABLE)
        + f". <b>Rule:</b> {html.escape(rule)}</p>"
    )
    out.append("<table><thead><tr>")
    # Verdict right after the cell's name: the column a reader looks for must not be the one a
    # narrow window cuts off.
    heads = ["table", "cell", "quantity", "verdict", "paper", "ours (n)", "ours − paper"]
    for h in heads:
        cls = ' class="l"' if h in ("table", "cell", "quantity", "verdict") else ""
        out.append(f"<th{cls}>{h}</th>")
    out.append("</tr></thead><tbody>")
    for _, r in summary.iterrows():
        d = r["diff"]
        diff = "–" if pd.isna(d) else f"{'+' if d >= 0 else ''}{fmt_value(d)}"
        out.append(
            "<tr>"
            f'<td class="l">{html.escape(str(r["table"]))}</td>'
            f'<td class="l">{html.escape(str(r["cell"]))}</td>'
            f'<td class="l" title="{html.escape(str(r["quantity"]))}">'
            f"{html.escape(quantity_label(str(r['quantity'])))}</td>"
            f'<td class="l {_VERDICT_CLASS[r["verdict"]]}">{r["verdict"]}</td>'
            f"<td>{fmt_value(r['paper'])}</td>"
            f"<td>{fmt_mean_std(r['mean'], r['std'], r['n'], r.get('diverged', 0))}</td>"
            f"<td>{diff}</td>"
            "</tr>"
        )
    out.append("</tbody></table></div>")
    return "\n".join(out)


def rule_text(tolerances: Mapping[str, Mapping | Tolerance]) -> str:
    """The verdict rule in words, listing each quantity pattern's tolerance."""
    per = "; ".join(f"{p}: {tolerance_for(p, tolerances).describe()}" for p in tolerances)
    return (
        "reproduced when |ours − paper| ≤ max(2 standard errors of our mean, tolerance); "
        f"tolerances by quantity: {per}; diverged when a seed of the run diverged."
    )


def rows_in_order(summary: pd.DataFrame, table_order: Sequence[str]) -> pd.DataFrame:
    order = {t: i for i, t in enumerate(table_order)}
    return summary.sort_values("table", key=lambda s: s.map(order), kind="stable")


# --------------------------------------------------------------------------- front page


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def provenance_rows(prov: Mapping) -> list[tuple[str, str]]:
    """(label, text) pairs of the report's front page, from the provenance JSON."""
    pk = prov.get("packages", {})
    dev = prov.get("device", {})
    trained = prov.get("training_devices", {})
    data = prov.get("data", {})
    seeds = prov.get("seeds_per_table", {})
    seed_text = "; ".join(f"{t}: {len(s)}" for t, s in seeds.items()) or str(prov.get("seeds"))
    return [
        ("Preset", f"{prov.get('preset', '?')} — {prov.get('preset_note', '')}".strip(" —")),
        ("Built", str(prov.get("date", "?"))),
        (
            "Data",
            f"{data.get('source', '?')} ({', '.join(data.get('datasets', []))})"
            + (f"; files from {data['mirror']}" if data.get("mirror") else ""),
        ),
        ("Seeds per table", seed_text),
        ("Training devices", ", ".join(f"{d} ({_runs(n)})" for d, n in trained.items()) or "–"),
        ("Report built on", dev.get("summary", "?")),
        ("Packages", ", ".join(f"{k} {v}" for k, v in pk.items())),
        ("Code", str(prov.get("git", "?"))),
    ]


# Snakemake's report centres its content vertically in a screen-high box, which clips the top of
# anything taller than the window (the page title first). Top-align it instead.
REPORT_LAYOUT_FIX = (
    "<style>div.grow.flex.items-center.justify-center.h-screen.overflow-auto"
    "{align-items:flex-start}</style>"
)


def verdicts_by_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per table: number of compared values and how many got each verdict."""
    rows = []
    for table, sub in summary.groupby("table", sort=False):
        counts = verdict_counts(sub)
        rows.append({"table": table, "values": len(sub), **counts})
    return pd.DataFrame(rows, columns=["table", "values", *VERDICTS])


def claims_html(claims: pd.DataFrame, comparable: bool) -> str:
    """Frankle et al.'s five claims (``spp.frankle.claims``): one row per network and claim with
    its verdict; the numbers are on the claims table's own report page."""
    out = ["<p><b>Frankle et al. 2021, the paper's claims</b> (tables/frankle_claims.csv):</p>",
           "<table><thead><tr><th class='l'>network</th><th class='l'>claim</th>"
           "<th>verdict</th></tr></thead><tbody>"]
    for r in claims.itertuples():
        verdict = r.verdict if comparable else "not comparable (preset)"
        cls = {"reproduced": "spp-ok", "not reproduced": "spp-bad"}.get(verdict, "spp-na")
        out.append(f'<tr><td class="l">{html.escape(str(r.network))}</td>'
                   f'<td class="l" style="white-space:normal">{int(r.claim)}. '
                   f'{html.escape(str(r.statement))}</td><td class="{cls}">'
                   f"{html.escape(verdict)}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def front_page_html(prov: Mapping, summary: pd.DataFrame, comparable: bool, rule: str,
                    claims: pd.DataFrame | None = None) -> str:
    """The compact HTML fragment the report's front page (report/workflow.rst) includes:
    provenance, the preset warning, verdict counts per table, Frankle et al.'s claims and the
    rule. The per-value table is its own report page (Summary), it is too wide for the front
    page's text column."""
    out = [REPORT_LAYOUT_FIX, STYLE, '<div class="spp-summary">', "<table><tbody>"]
    for label, text in provenance_rows(prov):
        out.append(
            f'<tr><th class="l">{html.escape(label)}</th>'
            f'<td class="l" style="white-space:normal">{html.escape(text)}</td></tr>'
        )
    out.append("</tbody></table>")
    preset = str(prov.get("preset", "?"))
    if not comparable:
        out.append(
            f'<div class="spp-banner">Preset "{html.escape(preset)}" does not follow the paper\'s '
            "protocol: its numbers test the pipeline, they are not a reproduction, and no value "
            "is called reproduced.</div>"
        )
    by_table = verdicts_by_table(summary)
    cols = ["values", *(v for v in VERDICTS if comparable or v != REPRODUCED)]
    out.append("<table><thead><tr><th class='l'>table</th>")
    out += [f"<th>{html.escape(c)}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for _, r in by_table.iterrows():
        name = str(r["table"]).replace("table", "Table ").replace("figure", "Figure ")
        out.append(f'<tr><td class="l">{html.escape(name)}</td>')
        for c in cols:
            cls = f' class="{_VERDICT_CLASS[c]}"' if c in _VERDICT_CLASS and r[c] else ""
            out.append(f"<td{cls}>{int(r[c])}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    if claims is not None and not claims.empty:
        out.append(claims_html(claims, comparable))
    out.append(
        f"<p><b>Rule:</b> {html.escape(rule)} Every value with its paper number, our mean ± std "
        "and the difference: <b>Summary</b> in the menu.</p></div>"
    )
    return "\n".join(out)


def standalone_page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h2 style='font-family:system-ui,sans-serif'>{html.escape(title)}</h2>\n{body}\n"
        "</body></html>\n"
    )
