"""Pruning scores of each seed's initialized network -> <score folder>/seed<k>.pt."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

from pathlib import Path

import spp
import spp.data.datasets
import spp.paths as P
import spp.pruning.scores
from _common import network, pick_device, start
from spp.atomic import save_tensors

log = start(snakemake)
p = snakemake.params
device = pick_device(p.device)
data = spp.data.datasets.load(snakemake.input.data, device=device) \
    if "data" in snakemake.input.keys() else None
method, loss = p.score["method"], p.score["loss"]
out = Path(snakemake.output[0])
for seed in p.seeds:
    model, _ = network(p.net, P.seed_tensors(snakemake.input.init, seed), device=device)
    options = {"loss": loss} if loss is not None else {}
    scores = spp.pruning.scores.score_in_context(
        model, method, context={"seed": seed}, options=options,
        batches=lambda: spp.data.datasets.first_examples(data.batches("train", p.batch_size),
                                                p.max_examples))
    save_tensors({k: v.detach().cpu() for k, v in scores.items()}, P.seed_tensors(out, seed))
    log(f"seed {seed}: {method} {options} on {device}")
