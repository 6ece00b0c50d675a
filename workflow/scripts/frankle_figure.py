"""P/tables/frankle.csv + the claim checks -> P/figures/frankle.{png,svg} and its caption text."""

import sys

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import pandas as pd  # noqa: E402
import spp.frankle.claims  # noqa: E402
import spp.frankle.runs  # noqa: E402
from _common import start  # noqa: E402
from spp.atomic import write_text  # noqa: E402
from spp.report.plotting import save_figure  # noqa: E402

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
