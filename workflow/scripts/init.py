"""Build and initialize a network for each seed -> <init folder>/seed<k>.pt (state_dict)."""

import sys
from pathlib import Path

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import spp  # noqa: E402
import spp.paths as P  # noqa: E402
from _common import build, start  # noqa: E402
from spp.atomic import save_tensors  # noqa: E402

log = start(snakemake)
net = snakemake.params.net
out = Path(snakemake.output[0])
for seed in snakemake.params.seeds:
    model = build(net)
    spp.initialize(model, net["scheme"], seed=seed, gamma=net["gamma"])
    save_tensors(model.state_dict(), P.seed_tensors(out, seed))
    log(f"seed {seed}: {net['arch']} initialized with {net['scheme']} (gamma {net['gamma']})")
