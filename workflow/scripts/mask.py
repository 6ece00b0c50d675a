"""Global top-k masks at the target sparsity -> <mask folder>/seed<k>.pt ({name: bool})."""

import sys
from pathlib import Path

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import spp  # noqa: E402
import spp.paths as P  # noqa: E402
from _common import build, load, start  # noqa: E402
from spp.atomic import save_tensors  # noqa: E402
from spp.pruning.masks import keep_all  # noqa: E402

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
        mask = spp.global_mask(scores, p.sparsity)
    save_tensors({k: v.cpu() for k, v in mask.items()}, P.seed_tensors(out, seed))
    kept = sum(int(v.sum()) for v in mask.values())
    total = sum(v.numel() for v in mask.values())
    log(f"seed {seed}: kept {kept}/{total} ({1 - kept / total:.4f} pruned)")
