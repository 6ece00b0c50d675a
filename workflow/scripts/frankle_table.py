"""Run rows + dense metrics -> P/tables/frankle.csv (mean/std/n per network x method x ablation x
sparsity; the dense net as method `dense`, sparsity 0) and P/tables/frankle_runs.csv (all runs)."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

import json
from pathlib import Path

import pandas as pd
import spp.frankle.runs
from _common import start
from spp.atomic import write_csv

log = start(snakemake)
p = snakemake.params
rows = [r for f in snakemake.input.runs for r in json.loads(Path(f).read_text())]
for name, files in p.dense.items():
    for f in files:
        m = json.loads(Path(f).read_text())
        rows.append({"network": name, "method": "dense", "ablation": "none", "sparsity": 0.0,
                     "seed": m["seed"], **{k: m.get(k) for k in spp.frankle.runs.METRICS},
                     "diverged": m.get("diverged", False), "collapsed": ""})
runs = pd.DataFrame(rows)
table = spp.frankle.runs.aggregate(runs)
table.insert(0, "preset", p.preset)
for df, out in ((runs, snakemake.output.runs), (table, snakemake.output.csv)):
    write_csv(df, out)
log(f"{len(runs)} runs -> {len(table)} rows")
