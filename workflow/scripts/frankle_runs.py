"""Every (sparsity, ablation) run of one Frankle method on one network, for the part's seeds ->
one JSON list of run rows (spp.frankle.runs.run_cells). Layer collapse is recorded, not fatal."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

import dataclasses
import shutil
from pathlib import Path

import spp.data.datasets
import spp.frankle.runs
import spp.paths as P
import spp.train.training
from _common import build, load, pick_device, start
from spp.atomic import write_json

log = start(snakemake)
p = snakemake.params
method = snakemake.wildcards.method
device = pick_device(p.device)
data = spp.data.datasets.load(snakemake.input.data, device=device)
scoring = p.scoring
options = dict(p.options)


def make_model(seed):
    model = build(p.net)
    model.load_state_dict(load(P.seed_tensors(snakemake.input.init, seed)))
    return model.to(device)


# One checkpoint per run beside the output: a killed job (e.g. a SLURM time limit) resumes each
# run where it stopped, and finished runs return at once; removed when the job's output exists.
CKPT_DIR = Path(snakemake.output[0]).with_suffix(".ckpt")


# The training data (every training image, as OpenLTH) and recipe, once for all the job's runs.
train_data, recipe_cfg = spp.frankle.runs.training_setup(data, p.recipe, seed=0)


def train_fn(model, mask, seed, tag):
    cfg = dataclasses.replace(recipe_cfg, seed=seed)
    mask = {k: v.to(device) for k, v in mask.items()}
    return spp.train.training.train(model.to(device), mask, train_data, cfg, device,
                              checkpoint_path=CKPT_DIR / f"{tag}.ckpt", log=log).summary


rows = []
for seed in p.seeds:
    trained = rewound = None
    if spp.frankle.runs.method_info(method).after_training:
        trained = load(next(f for f in snakemake.input.dense if f.endswith(f"/seed{seed}.pt")))
        rewound = load(next(f for f in snakemake.input.rewind
                            if f.endswith(f"/seed{seed}.rewind.pt")))
    rows += spp.frankle.runs.run_cells(
        method, make_model, seed=seed, sparsities=p.sparsities, ablations=p.ablations,
        train_fn=train_fn, init_scheme=p.net["scheme"],
        batches=spp.frankle.runs.scoring_batches(data, scoring["batch_size"],
                                            scoring["examples_per_class"]),
        input_shape=tuple(data.input_shape), trained_state=trained, rewind_state=rewound,
        options=options, log=log,
    )
for r in rows:
    r.update(network=p.net["name"], arch=p.net["arch"], dataset=snakemake.wildcards.dataset,
             init=p.net["scheme"], device=str(device))
write_json(rows, snakemake.output[0])
shutil.rmtree(CKPT_DIR, ignore_errors=True)
log(f"{len(rows)} runs written")
