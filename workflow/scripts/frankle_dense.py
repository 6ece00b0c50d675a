"""Train one seed's dense (unpruned) net with the Frankle experiment's recipe -> its final
weights (start of magnitude-after-training) and metrics (the unpruned reference)."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)
import spp.data  # noqa: E402
import spp.paths as P  # noqa: E402
import spp.training  # noqa: E402
from _common import build, load, pick_device, start  # noqa: E402
from spp.atomic import save_tensors, write_json  # noqa: E402

log = start(snakemake)
p = snakemake.params
seed = int(snakemake.wildcards.seed)
device = pick_device(p.device)
data = spp.data.load(snakemake.input.data, device=device)
model = build(p.net)
model.load_state_dict(load(P.seed_tensors(snakemake.input.init, seed)))
cfg = spp.training.TrainConfig(**p.recipe, seed=seed)
ckpt = Path(snakemake.output.state).with_suffix(".ckpt")
result = spp.training.train(model.to(device), None, data, cfg, device, checkpoint_path=ckpt,
                            log=log)
save_tensors({k: v.cpu() for k, v in model.state_dict().items()}, snakemake.output.state)
write_json({**result.summary, "seed": seed, "device": str(device), "recipe": dict(p.recipe),
           "net": dict(p.net)}, snakemake.output.metrics)
ckpt.unlink(missing_ok=True)
log(f"dense seed {seed}: error {result.summary.get('error')}")
