"""Figure 1: sparsity patterns and connection sensitivity per layer, linear and tanh MLPs."""

import sys

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
from _common import load, start  # noqa: E402
from spp.report import plotting  # noqa: E402
from spp.tables.experiments import DATASET_LABELS  # noqa: E402

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
