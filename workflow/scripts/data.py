"""Fetch (download, mirror or shipped subset), verify md5, and prepare one dataset file."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import spp.data.datasets
from _common import start

log = start(snakemake)
name = snakemake.wildcards.dataset
p = snakemake.params
log(f"fetch {name} (source {p.source}, mirror {p.mirror}) -> {p.raw_dir}")
raw = spp.data.datasets.fetch(name, p.raw_dir, mirror=p.mirror, source=p.source)
log(f"prepare {name} -> {snakemake.output[0]}")
spp.data.datasets.prepare(name, raw, snakemake.output[0])
log("done")
