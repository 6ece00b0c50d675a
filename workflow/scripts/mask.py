"""Global top-k masks at the target sparsity -> <mask folder>/seed<k>.pt ({name: bool})."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

from pathlib import Path

import spp.paths as P
from _common import build, load, start
from spp.atomic import save_tensors
from spp.pruning.masks import global_mask, keep_all

log = start(snakemake)
p = snakemake.params
out = Path(snakemake.output[0])
for seed in p.seeds:
    if p.dense:  # nothing pruned
        if p.sparsity != 0:
            raise ValueError(f"score 'dense' needs sparsity 0, got {p.sparsity}")
        mask = keep_all(build(p.net))
    else:
        scores = load(P.seed_tensors(snakemake.input.score, seed))
        mask = global_mask(scores, p.sparsity)
    save_tensors({k: v.cpu() for k, v in mask.items()}, P.seed_tensors(out, seed))
    kept = sum(int(v.sum()) for v in mask.values())
    total = sum(v.numel() for v in mask.values())
    log(f"seed {seed}: kept {kept}/{total} ({1 - kept / total:.4f} pruned)")
