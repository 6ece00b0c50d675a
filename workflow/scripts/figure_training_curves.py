"""Training curves of one table: every cell's history.csv (all seeds) -> one figure."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import pandas as pd
from _common import start
from spp import paths as P
from spp.report import plotting

log = start(snakemake)
p = snakemake.params
frames = []
for row in p.rows.value:
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
