"""Approximate isometry on each seed's pruned network -> <repair folder>/seed<k>.pt."""

import sys
from pathlib import Path

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import spp  # noqa: E402
import spp.paths as P  # noqa: E402
from _common import network, pick_device, start  # noqa: E402
from spp.atomic import save_tensors  # noqa: E402

log = start(snakemake)
p = snakemake.params
device = pick_device(p.device)
out = Path(snakemake.output[0])
for seed in p.seeds:
    model, mask = network(p.net, P.seed_tensors(snakemake.input.init, seed),
                          P.seed_tensors(snakemake.input.mask, seed), device)
    before = spp.orthogonality_score(model, mask)
    spp.approximate_isometry(model, mask, steps=p.steps, lr=p.lr)
    after = spp.orthogonality_score(model, mask)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_tensors(state, P.seed_tensors(out, seed))
    log(f"seed {seed}: orthogonality score {before:.4g} -> {after:.4g} ({p.steps} steps)")
