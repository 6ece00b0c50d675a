"""Fetch (download, mirror or shipped subset), verify md5, and prepare one dataset file."""

import sys

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import spp.data.datasets  # noqa: E402
from _common import start  # noqa: E402

log = start(snakemake)
name = snakemake.wildcards.dataset
p = snakemake.params
log(f"fetch {name} (source {p.source}, mirror {p.mirror}) -> {p.raw_dir}")
raw = spp.data.datasets.fetch(name, p.raw_dir, mirror=p.mirror, source=p.source)
log(f"prepare {name} -> {snakemake.output[0]}")
spp.data.datasets.prepare(name, raw, snakemake.output[0])
log("done")
