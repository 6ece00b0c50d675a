"""One aggregated table CSV -> the table in the paper's layout (HTML), ours over the paper's."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import pandas as pd
from _common import start
from spp.atomic import write_text
from spp.report.report_tables import paper_layout_html
from spp.tables.table_specs import table_title

log = start(snakemake)
p = snakemake.params
df = pd.read_csv(snakemake.input[0])
# The preset's note comes from the config, not params: the report lists every job's params
# beside each result, and a long one pushes the result off the screen.
note = snakemake.config["preset_note"]
page = paper_layout_html(p.table, df, table_title(p.table, snakemake.config), preset=p.preset,
                         note=note, comparable=p.comparable)
out = write_text(snakemake.output[0], page)
log(f"{p.table}: paper layout -> {out}")
