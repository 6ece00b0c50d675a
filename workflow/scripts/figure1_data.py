"""Figure 1 data for one activation: CS masks per layer and sparsity, and the sensitivities."""

import sys

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import spp.data.datasets  # noqa: E402
import torch  # noqa: E402
from _common import start  # noqa: E402
from spp.atomic import save_tensors  # noqa: E402
from spp.tables.figure_experiments import sparsity_patterns  # noqa: E402

log = start(snakemake)
p = snakemake.params
data = spp.data.datasets.load(snakemake.input.data)
res = sparsity_patterns(
    data,
    snakemake.wildcards.activation,
    p.sparsities,
    seed=p.seed,
    gamma=p.gamma,
    scheme=p.init,
    batch_size=p.batch_size,
    examples=p.examples,
)
save_tensors(
    {
        "sparsities": torch.tensor(sorted(res["masks"]), dtype=torch.float64),
        "masks": {
            f"{s:.6f}": [torch.from_numpy(m) for m in masks] for s, masks in res["masks"].items()
        },
        "sensitivity": [torch.from_numpy(a) for a in res["sensitivity"]],
    },
    snakemake.output[0],
)
log(f"figure1 {snakemake.wildcards.activation}: {len(res['masks'])} sparsities")
