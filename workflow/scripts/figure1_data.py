"""Figure 1 data for one activation: CS masks per layer and sparsity, and the sensitivities."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import spp.data.datasets
import torch
from _common import start
from spp.atomic import save_tensors
from spp.tables.figure_experiments import sparsity_patterns

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
