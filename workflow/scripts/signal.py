"""Signal propagation of each seed's network as it will be trained -> <signal>/seed<k>.json:
Jacobian singular values, orthogonality score, per-layer sparsity."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

import math
from pathlib import Path

import spp
import spp.data.datasets
import spp.paths as P
from _common import network, pick_device, start
from spp.atomic import write_json
from spp.pruning.masks import layer_sparsity
from spp.signal.isometry import orthogonality_score
from spp.signal.jacobian import jacobian_singular_values

log = start(snakemake)
p = snakemake.params
device = pick_device(p.device)
data = spp.data.datasets.load(snakemake.input.data, device=device)
out = Path(snakemake.output[0])
for seed in p.seeds:
    model, mask = network(p.net, P.seed_tensors(snakemake.input.weights, seed),
                          P.seed_tensors(snakemake.input.mask, seed), device)
    model.eval()
    batches = spp.data.datasets.first_examples(data.batches("train", p.batch_size), p.max_examples)
    jac = jacobian_singular_values(model, batches)
    record = {
        "seed": seed,
        "jacobian": {k: float(v) for k, v in jac.items()},
        "orthogonality_score": float(orthogonality_score(model, mask)),
        "layer_sparsity": {k: float(v) for k, v in layer_sparsity(mask).items()},
        "kept": int(sum(int(v.sum()) for v in mask.values())),
        "total": int(sum(v.numel() for v in mask.values())),
        "examples": p.max_examples,
    }
    write_json(record, P.seed_signal(out, seed))
    log(f"seed {seed}: jsv mean {record['jacobian'].get('mean', math.nan):.4g}, "
        f"OS {record['orthogonality_score']:.4g}")
