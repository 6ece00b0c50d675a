"""Per-seed signal / training files of a table's cells -> table CSV + Markdown + HTML
(and, for Figure 3, the figure)."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

import shutil
from pathlib import Path

from _common import start
from spp.tables import aggregate as A
from spp.tables.table_specs import table_title

log = start(snakemake)
p = snakemake.params
table = p.table
out = snakemake.output
# Snakemake deletes a job's outputs before running it, so a table rebuilt from damaged per-seed
# files would leave none: the last table built without error is kept beside it.
last_good = Path(out.csv).parent / "last-good"
try:
    df = A.build_table(
        table, p.rows.value, paper=A.load_paper(snakemake.input.paper), preset=p.preset
    )
except ValueError as e:  # damaged or missing per-seed files, named in e
    if not (last_good / Path(out.csv).name).is_file():
        raise
    raise ValueError(
        f"{e}\n{table} was not rebuilt; the last {table} built without error is "
        f"kept in {last_good}/"
    ) from None
title = f"{table_title(table, snakemake.config)} [{p.preset} preset]"
A.write_table(df, out.csv, out.md, out.html, title=title, note=p.note)
if table == "figure3":
    A.plot_figure3(df, out.png, out.svg, note=p.note)
last_good.mkdir(exist_ok=True)
for f in (out.csv, out.md, out.html):
    shutil.copy2(f, last_good / Path(f).name)
log(f"{table}: {len(df)} rows -> {out.csv}")
