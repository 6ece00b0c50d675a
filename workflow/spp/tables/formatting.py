"""How every rendered table shows a number, and the one stylesheet they share.

The Markdown and HTML tables of the aggregate stage, the paper-layout tables, the report's summary
and the committed evidence pages all format through here, so a value reads the same wherever it
appears, and they all style with ``STYLE``.
"""

from __future__ import annotations

import math

import pandas as pd


def _missing(x) -> bool:
    return x is None or (not isinstance(x, str) and pd.isna(x))


def fmt_value(x, quantity: str = "") -> str:
    """Numbers as the paper prints them: 2 decimals, scientific (3 significant digits) outside
    [0.01, 1e4); parameter counts whole with separators, sparsities to 3 decimals."""
    if _missing(x):
        return "–"
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if "params" in quantity:
        return f"{x:,.0f}"
    if "sparsity" in quantity:
        return f"{x:.3f}"
    if x != 0 and (abs(x) < 0.01 or abs(x) >= 1e4):
        return f"{x:.2e}"
    return f"{x:.2f}"


def fmt_std(mean, std, quantity: str = "") -> str:
    """The spread in the mean's own notation: "0.97 ± 0.01", not "0.97 ± 5.11e-03"."""
    if _missing(std):
        return "–"
    if ("params" in quantity or "sparsity" in quantity or "e" in fmt_value(mean, quantity)
            or math.isinf(float(std))):
        return fmt_value(std, quantity)
    return f"{float(std):.2f}"


def fmt_mean_std(mean, std, n, diverged=0, quantity: str = "") -> str:
    """ "mean ± std (n=N)" with diverged seeds said; "not run" or "diverged (k seeds)" when no
    seed gave a value."""
    div = int(diverged) if not _missing(diverged) else 0
    if _missing(mean) or _missing(n) or n == 0:
        return f"diverged ({div} seeds)" if div else "not run"
    text = fmt_value(mean, quantity)
    if n > 1 and not _missing(std):
        text += f" ± {fmt_std(mean, std, quantity)}"
    return text + f" (n={int(n)}" + (f"; {div} diverged)" if div else ")")


STYLE = """<style>
body {font-family: system-ui, sans-serif; font-size: 14px; color: #111; margin: 12px;}
table.spp, .spp-summary table, table.spp-paper {border-collapse: collapse; margin: 0.5em 0 1em 0;}
table.spp td, table.spp th, .spp-summary th, .spp-summary td, table.spp-paper th,
  table.spp-paper td {border: 1px solid #bbb; padding: 3px 7px; text-align: right;
  vertical-align: top;}
table.spp th, .spp-summary th, table.spp-paper th {background: #f0f0f0; text-align: center;}
.spp-summary {font-family: system-ui, sans-serif; font-size: 13px; color: #111;}
.spp-summary th, .spp-summary td {white-space: nowrap;}
.spp-summary td.l, .spp-summary th.l {text-align: left;}
.spp-summary .spp-ok {background: #d9f2d9;}
.spp-summary .spp-bad {background: #f8d7d7;}
.spp-summary .spp-na {background: #eee; color: #555;}
table.spp-paper td.k {text-align: left; white-space: nowrap; background: #fafafa;}
table.spp-paper .paper {color: #555; font-size: 12px; display: block;}
table.spp-paper .ours {display: block; white-space: nowrap;}
table.spp-paper .sd {color: #555; font-size: 12px;}
.spp-banner {border: 2px solid #c77; background: #fff4e5; padding: 6px 10px; margin: 0.5em 0;}
.spp-summary .spp-banner {font-weight: bold;}
</style>"""
