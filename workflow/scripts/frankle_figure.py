"""P/tables/frankle.csv + the claim checks -> P/figures/frankle.{png,svg} and its caption text."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import pandas as pd
import spp.frankle.claims
import spp.frankle.runs
from _common import start
from spp.atomic import write_text
from spp.report.plotting import save_figure

log = start(snakemake)
p = snakemake.params
table = pd.read_csv(snakemake.input.table)
claims = pd.read_csv(snakemake.input.claims)
label = "QUICK PRESET (smoke test, not a reproduction)" if p.preset == "quick" else p.preset
fig = spp.frankle.runs.figure(table, note=f"Frankle et al. 2021 experiment, {label}")
save_figure(fig, snakemake.output.png, snakemake.output.svg)
text = (f"[{label}] " + spp.frankle.runs.ranking_text(table) + " "
        + spp.frankle.claims.summary_text(claims))
write_text(snakemake.output.claim, text + "\n")
log(text)
