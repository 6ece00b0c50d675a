"""Build and initialize a network for each seed -> <init folder>/seed<k>.pt (state_dict)."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

from pathlib import Path

import spp.paths as P
from _common import build, start
from spp.atomic import save_tensors
from spp.nets.initializers import initialize

log = start(snakemake)
net = snakemake.params.net
out = Path(snakemake.output[0])
for seed in snakemake.params.seeds:
    model = build(net)
    initialize(model, net["scheme"], seed=seed, gamma=net["gamma"])
    save_tensors(model.state_dict(), P.seed_tensors(out, seed))
    log(f"seed {seed}: {net['arch']} initialized with {net['scheme']} (gamma {net['gamma']})")
