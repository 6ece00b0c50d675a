"""Approximate isometry on each seed's pruned network -> <repair folder>/seed<k>.pt."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

from pathlib import Path

import spp.paths as P
from _common import network, pick_device, start
from spp.atomic import save_tensors
from spp.signal.isometry import approximate_isometry, orthogonality_score

log = start(snakemake)
p = snakemake.params
device = pick_device(p.device)
out = Path(snakemake.output[0])
for seed in p.seeds:
    model, mask = network(p.net, P.seed_tensors(snakemake.input.init, seed),
                          P.seed_tensors(snakemake.input.mask, seed), device)
    before = orthogonality_score(model, mask)
    approximate_isometry(model, mask, steps=p.steps, lr=p.lr)
    after = orthogonality_score(model, mask)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_tensors(state, P.seed_tensors(out, seed))
    log(f"seed {seed}: orthogonality score {before:.4g} -> {after:.4g} ({p.steps} steps)")
