"""Per-seed signal / training files of a table's cells -> table CSV + Markdown + HTML
(and, for Figure 3, the figure)."""

import sys

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
from _common import start  # noqa: E402
from spp import aggregate as A  # noqa: E402

log = start(snakemake)
p = snakemake.params
table = p.table
df = A.build_table(table, p.rows, paper=A.load_paper(snakemake.input.paper), preset=p.preset)
title = f"{A.table_title(table, snakemake.config)} [{p.preset} preset]"
out = snakemake.output
A.write_table(df, out.csv, out.md, out.html, title=title, note=p.note)
if table == "figure3":
    A.plot_figure3(df, out.png, out.svg, note=p.note)
log(f"{table}: {len(df)} rows -> {out.csv}")
