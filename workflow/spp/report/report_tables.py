"""The paper's tables in the paper's own layout, ours and the paper's number in every cell.

The aggregated CSVs (`spp.tables.aggregate`) have one row per cell and one column group per
quantity; a reader wants the table as printed in the paper: Table 2 with initializations down and
networks across, Table 4 with losses down and depths across. Each table's spec
(`spp.tables.table_specs`) says which key columns go down, which go across, and which quantities
fill a cell. Best per column in bold, as in the paper: the lowest of our errors and, separately,
the lowest of the paper's.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

from spp.tables.aggregate import diverged_seeds
from spp.tables.formatting import STYLE, fmt_std, fmt_value
from spp.tables.table_specs import spec


def _key_text(v) -> str:
    if isinstance(v, bool):
        return "✓" if v else "✗"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _col_groups(df: pd.DataFrame, cols: Sequence[str]) -> list[tuple]:
    """Column groups nested as in the paper: outer key first (Table 3: network, then activation),
    each level in order of first appearance."""
    if not cols:
        return [()]
    order = [{v: i for i, v in enumerate(dict.fromkeys(df[c]))} for c in cols]
    groups = dict.fromkeys(tuple(r) for r in df[list(cols)].itertuples(index=False))
    return sorted(groups, key=lambda g: tuple(o[v] for o, v in zip(order, g, strict=True)))


def _is_num(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def paper_layout_html(
    table: str, df: pd.DataFrame, title: str, preset: str = "", note: str = "",
    comparable: bool = False,
) -> str:
    """A standalone HTML page: the table as printed in the paper, ours above the paper's.
    ``title`` says what the config ran (``spp.tables.table_specs.table_title``); ``note`` (the
    preset's description) is a warning banner unless the preset is comparable."""
    lay = spec(table).layout
    missing = [c for c in (*lay.rows, *lay.cols) if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: key columns {missing} missing; have {list(df.columns)}")
    values = [(q, h) for q, h in lay.values if f"{q}_mean" in df.columns or f"paper_{q}" in df]
    groups = _col_groups(df, lay.cols)
    counts = {
        int(n)
        for q, _ in values
        if f"{q}_n" in df.columns
        for n in df[f"{q}_n"]
        if _is_num(n) and n > 0
    }
    same_n = counts.pop() if len(counts) == 1 else None  # then say n once, not in every cell
    row_keys = list(dict.fromkeys(tuple(r) for r in df[list(lay.rows)].itertuples(index=False)))

    def cell(rk, gk):
        sel = df
        for c, v in zip(lay.rows, rk, strict=True):
            sel = sel[sel[c] == v]
        for c, v in zip(lay.cols, gk, strict=True):
            sel = sel[sel[c] == v]
        return sel.iloc[0] if len(sel) else None

    # Best per column (lowest ours, lowest paper) for the lower-is-better quantities.
    best = {}
    for gk in groups:
        for q, _ in values:
            if q not in lay.lower_is_better:
                continue
            for src in ("ours", "paper"):
                col = f"{q}_mean" if src == "ours" else f"paper_{q}"
                vals = [cell(rk, gk) for rk in row_keys]
                nums = [r[col] for r in vals if r is not None and col in r and _is_num(r[col])]
                if len(nums) > 1:
                    best[(gk, q, src)] = min(nums)

    def render(r, gk, q):
        if r is None:
            return "<td>–</td>"
        mean = r.get(f"{q}_mean")
        std, n = r.get(f"{q}_std"), r.get(f"{q}_n")
        paper = r.get(f"paper_{q}")
        div = diverged_seeds(r, q)
        if _is_num(mean) and _is_num(n) and n > 0:
            ours = html.escape(fmt_value(mean))
            if best.get((gk, q, "ours")) == mean:
                ours = f"<b>{ours}</b>"
            sd = f" ± {fmt_std(mean, std)}" if _is_num(std) else ""
            if same_n is None:
                sd += f" (n={int(n)})"
            if div:
                sd += f" ({div} diverged)"
            ours_html = f'<span class="ours">{ours}<span class="sd">{sd}</span></span>'
        else:
            text = f"diverged ({div} seeds)" if div else "not run"
            ours_html = f'<span class="ours sd">{text}</span>'
        if _is_num(paper):
            p = html.escape(fmt_value(paper))
            if best.get((gk, q, "paper")) == paper:
                p = f"<b>{p}</b>"
            paper_html = f'<span class="paper">paper {p}</span>'
        else:
            paper_html = '<span class="paper">paper –</span>'
        return f"<td>{ours_html}{paper_html}</td>"

    out = [
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>{STYLE}</head><body>",
        f"<h2>{html.escape(title)}</h2>",
    ]
    if preset:
        out.append(f"<p><b>Preset:</b> {html.escape(preset)}</p>")
    if note:
        cls = "" if comparable else ' class="spp-banner"'
        out.append(f"<div{cls}>{html.escape(note)}</div>")
    out.append('<table class="spp-paper"><thead>')
    span = len(values)
    if lay.cols:
        for level in range(len(lay.cols)):
            out.append("<tr>")
            if level == 0:
                heads = "".join(f"<th rowspan={len(lay.cols) + 1}>{html.escape(c)}</th>"
                                for c in lay.rows)  # fmt: skip
                out.append(heads)
            # merge neighbouring groups sharing this level's prefix
            prev, count = None, 0
            cells = []
            for gk in groups:
                prefix = gk[: level + 1]
                if prefix == prev:
                    count += 1
                else:
                    if prev is not None:
                        cells.append((prev, count))
                    prev, count = prefix, 1
            cells.append((prev, count))
            for prefix, c in cells:
                out.append(f"<th colspan={c * span}>{html.escape(_key_text(prefix[-1]))}</th>")
            out.append("</tr>")
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for _ in groups
                                    for _, h in values) + "</tr>")  # fmt: skip
    else:
        out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in lay.rows))
        out.append("".join(f"<th>{html.escape(h)}</th>" for _, h in values) + "</tr>")
    out.append("</thead><tbody>")
    for rk in row_keys:
        out.append("<tr>" + "".join(f'<td class="k">{html.escape(_key_text(v))}</td>' for v in rk))
        for gk in groups:
            r = cell(rk, gk)
            for q, _ in values:
                out.append(render(r, gk, q))
        out.append("</tr>")
    out.append("</tbody></table>")
    seeds = f"{same_n} seed{'s' if same_n != 1 else ''} per cell" if same_n else "n seeds"
    out.append(
        f"<p>Each cell: ours as mean ± sample std over seeds ({seeds}), the paper's published "
        "value below it. Errors are test errors in %, minimum over evaluations (the paper's "
        "protocol). <b>Bold</b>: lowest error per column, ours and the paper's separately.</p>"
        "</body></html>\n"
    )
    return "\n".join(out)
