"""Build and initialize a network for each seed -> <init folder>/seed<k>.pt (state_dict)."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)
from _common import build, log, save, start  # noqa: E402

import spp  # noqa: E402

start(snakemake)
net = snakemake.params.net
out = Path(snakemake.output[0])
for seed in snakemake.params.seeds:
    model = build(net)
    spp.initialize(model, net["scheme"], seed=seed, gamma=net["gamma"])
    save(model.state_dict(), out / f"seed{seed}.pt")
    log(f"seed {seed}: {net['arch']} initialized with {net['scheme']} (gamma {net['gamma']})")
