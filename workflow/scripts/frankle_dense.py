"""Train one seed's dense (unpruned) net with its Frankle recipe -> its final weights (scored by
magnitude-after-training), its weights at the rewind iteration (where that method's pruned runs
restart: lottery-ticket rewinding) and metrics (the unpruned reference)."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

from pathlib import Path

import spp.data.datasets
import spp.frankle.runs
import spp.paths as P
import spp.train.training
from _common import build, load, pick_device, start
from spp.atomic import save_tensors, write_json

log = start(snakemake)
p = snakemake.params
seed = int(snakemake.wildcards.seed)
device = pick_device(p.device)
data = spp.data.datasets.load(snakemake.input.data, device=device)
model = build(p.net)
model.load_state_dict(load(P.seed_tensors(snakemake.input.init, seed)))
train_data, cfg = spp.frankle.runs.training_setup(data, p.recipe, seed)
ckpt = Path(snakemake.output.state).with_suffix(".ckpt")
# The weights at the rewind iteration, kept beside the checkpoint (not an output, so a killed
# job keeps it) and copied to the output at the end.
rewind_at = int(p.rewind_iteration)
kept = ckpt.with_suffix(".rewind.pt")


def keep_rewind(it):
    if it == rewind_at:
        save_tensors({k: v.detach().cpu() for k, v in model.state_dict().items()}, kept)


if rewind_at == 0:
    keep_rewind(0)
result = spp.train.training.train(model.to(device), None, train_data, cfg, device,
                                  checkpoint_path=ckpt, log=log, after_step=keep_rewind)
if not kept.exists():
    raise RuntimeError(f"no weights kept at the rewind iteration {rewind_at} (a resume from a "
                       f"checkpoint past it, and {kept} is gone): delete {ckpt} and rerun")
save_tensors({k: v.cpu() for k, v in model.state_dict().items()}, snakemake.output.state)
kept.replace(snakemake.output.rewind)
write_json({**result.summary, "seed": seed, "device": str(device), "recipe": dict(p.recipe),
           "rewind_iteration": rewind_at, "net": dict(p.net)}, snakemake.output.metrics)
ckpt.unlink(missing_ok=True)
log(f"dense seed {seed}: final error {result.summary.get('final_error')}")
