"""Train each seed's masked network -> <train>/seed<k>/{metrics.json, history.csv}; resumable
from its checkpoint (see checkpoint()). Several seeds of an MLP cell train as one stacked
computation (spp.train.stacked: same results as one by one, a fraction of the per-step overhead)."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

import csv
from dataclasses import replace
from pathlib import Path

import spp.data.datasets
import spp.paths as P
import spp.train.stacked
import spp.train.training
from _common import network, pick_device, start
from spp.atomic import write_atomic, write_json
from spp.nets.models import MLP

log = start(snakemake)
p = snakemake.params
device = pick_device(p.device)
data = spp.data.datasets.load(snakemake.input.data, device=device)
per_seed = "metrics" in snakemake.output.keys()
root = Path(snakemake.output.metrics).parent if per_seed else Path(snakemake.output[0])
seeds = list(p.seeds)


def folder(seed: int) -> Path:
    f = root if per_seed else P.seed_train_dir(root, seed)
    f.mkdir(parents=True, exist_ok=True)
    return f


def checkpoint(seed: int | None = None) -> Path:
    """One seed's checkpoint (None: the stacked group's); where: spp.paths.train_checkpoint."""
    return P.train_checkpoint(root, seed, per_seed_job=per_seed)


nets = [network(p.net, P.seed_tensors(snakemake.input.weights, s),
                P.seed_tensors(snakemake.input.mask, s), device) for s in seeds]
cfg = spp.train.training.TrainConfig(**p.recipe, seed=seeds[0])
if len(seeds) > 1 and isinstance(nets[0][0], MLP):
    log(f"training seeds {seeds} stacked on {device}")
    results = spp.train.stacked.train_stacked([m for m, _ in nets], [k for _, k in nets], data, cfg,
                                        seeds, device, checkpoint_path=checkpoint(),
                                        log=log)
else:
    results = []
    for s, (model, mask) in zip(seeds, nets, strict=True):
        log(f"training seed {s} on {device}")
        results.append(spp.train.training.train(model, mask, data, replace(cfg, seed=s), device,
                                          checkpoint_path=checkpoint(s),
                                          log=log))

for s, result in zip(seeds, results, strict=True):
    out = folder(s)
    history = list(result.history)
    def write_history(tmp, history=history):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(history[0]) if history else ["iteration"])
            w.writeheader()
            w.writerows(history)

    write_atomic(out / P.HISTORY, write_history)
    write_json({**result.summary, "seed": s, "device": str(device), "recipe": dict(p.recipe),
               "net": dict(p.net), "train_dataset": snakemake.wildcards.train_dataset},
              out / P.METRICS)
    log(f"seed {s}: error {result.summary.get('error')} "
        f"(paper protocol {result.summary.get('error_paper_protocol')})")

# The outputs are complete: the checkpoints (kept until now so a killed job resumes) go.
for path in {checkpoint(), *map(checkpoint, seeds)}:
    path.unlink(missing_ok=True)
