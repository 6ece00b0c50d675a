"""Figure 2: (a) mean Jacobian singular value against sparsity, (b) training loss at 90%."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import pandas as pd
from _common import start
from spp.report import plotting

log = start(snakemake)
out = snakemake.output
signal = pd.concat([pd.read_csv(f) for f in snakemake.input.signal], ignore_index=True)
plotting.save_figure(
    plotting.figure2_signal(signal, "mean", title=snakemake.params.title_a), out.a_png, out.a_svg
)
training = pd.concat([pd.read_csv(f) for f in snakemake.input.training], ignore_index=True)
plotting.save_figure(
    plotting.figure2_training(training, title=snakemake.params.title_b), out.b_png, out.b_svg
)
log(f"figure2 -> {out.a_png}, {out.b_png}")
