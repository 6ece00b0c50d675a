"""Figure 2 data for one activation: (a) Jacobian singular values against sparsity per method,
or (b) training curves at one sparsity (params.panel)."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import pandas as pd
import spp.data.datasets
from _common import pick_device, start
from spp.atomic import write_csv
from spp.tables import figure_experiments as F

log = start(snakemake)
p = snakemake.params
act = snakemake.wildcards.activation
data = spp.data.datasets.load(snakemake.input.data)
common = dict(
    isometry_steps=p.isometry["steps"],
    isometry_lr=p.isometry["lr"],
    batch_size=p.batch_size,
    scoring_examples=p.scoring_examples,
)
if p.panel == "a":
    methods = [F.parse_method(m, p.vs_scheme) for m in p.methods]
    rows = F.signal_rows(
        data, act, methods, p.sparsities, p.seeds,
        jacobian_examples=p.jacobian_examples, **common,
    )  # fmt: skip
else:
    t = dict(p.training)
    methods = [F.parse_method(m, p.vs_scheme) for m in t.pop("methods")]
    sparsity = t.pop("sparsity")
    device = pick_device(p.device)
    rows = F.training_rows(data, act, methods, sparsity, p.seeds, t, device=device, **common)
out = snakemake.output[0]
write_csv(pd.DataFrame(rows), out)
log(f"figure2{p.panel} {act}: {len(rows)} rows -> {out}")
