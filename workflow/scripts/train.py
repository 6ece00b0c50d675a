"""Train each seed's masked network -> <train>/seed<k>/{metrics.json, history.csv}; resumable
from <train>/seed<k>/checkpoint.ckpt."""

import csv
import sys
from pathlib import Path

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import spp.data  # noqa: E402
import spp.training  # noqa: E402
from _common import network, pick_device, save_json, start  # noqa: E402

log = start(snakemake)
p = snakemake.params
device = pick_device(p.device)
data = spp.data.load(snakemake.input.data, device=device)
per_seed = "metrics" in snakemake.output.keys()
for seed in p.seeds:
    folder = Path(snakemake.output.metrics).parent if per_seed \
        else Path(snakemake.output[0]) / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    model, mask = network(p.net, Path(snakemake.input.weights) / f"seed{seed}.pt",
                          Path(snakemake.input.mask) / f"seed{seed}.pt", device)
    cfg = spp.training.TrainConfig(**p.recipe, seed=seed)
    result = spp.training.train(model, mask, data, cfg, device,
                                checkpoint_path=folder / "checkpoint.ckpt", log=log)
    history = list(result.history)
    tmp = folder / "history.csv.tmp"
    with open(tmp, "w", newline="") as f:
        fields = list(history[0]) if history else ["iteration"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(history)
    tmp.replace(folder / "history.csv")
    save_json({**result.summary, "seed": seed, "device": str(device), "recipe": dict(p.recipe),
               "net": dict(p.net), "train_dataset": snakemake.wildcards.train_dataset},
              folder / "metrics.json")
    log(f"seed {seed}: error {result.summary.get('error')} "
        f"(paper protocol {result.summary.get('error_paper_protocol')})")
