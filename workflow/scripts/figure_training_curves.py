"""Training curves of one table: every cell's history.csv (all seeds) -> one figure."""

import sys

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import pandas as pd  # noqa: E402
from _common import start  # noqa: E402
from spp import paths as P  # noqa: E402
from spp.report import plotting  # noqa: E402

log = start(snakemake)
p = snakemake.params
frames = []
for row in p.rows:
    for role, run in row["runs"].items():
        if not run.get("train"):  # signal-only role (Table 1's dense init): never trained
            continue
        for seed in run["seeds"]:
            path = P.seed_history(run["train"], seed)
            if not path.is_file():
                log(f"missing {path}: cell {row['keys']} seed {seed} left out")
                continue
            h = pd.read_csv(path)
            frames.append(h.assign(role=role, seed=seed, **row["keys"]))
if not frames:
    raise ValueError(f"{p.table}: no history.csv found under the table's training folders")
history = pd.concat(frames, ignore_index=True)
title = f"{p.title}: training curves, mean over seeds [{p.preset} preset]"
fig = plotting.table_training_curves(p.table, history, title=title)
plotting.save_figure(fig, snakemake.output.png, snakemake.output.svg)
log(f"{p.table}: {len(frames)} runs -> {snakemake.output.png}")
