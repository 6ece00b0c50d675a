"""Figure 1: sparsity patterns and connection sensitivity per layer, linear and tanh MLPs."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


from _common import load, start
from spp.report import plotting
from spp.tables.experiments import DATASET_LABELS

log = start(snakemake)
p = snakemake.params
patterns, sensitivities = {}, {}
for act, path in zip(p.activations, snakemake.input, strict=True):
    d = load(path)
    patterns[act] = {float(k): [m.numpy() for m in v] for k, v in d["masks"].items()}
    sensitivities[act] = [a.numpy() for a in d["sensitivity"]]
dataset = DATASET_LABELS.get(p.dataset, p.dataset)
init = f"SG(γ={p.gamma:g})" if p.init == "sg" else p.init
title = f"{init} init, connection sensitivity on {dataset} [{p.preset} preset]"
fig = plotting.figure1(patterns, sensitivities, title=title)
plotting.save_figure(fig, snakemake.output.png, snakemake.output.svg)
log(f"figure1 -> {snakemake.output.png}")
