"""What this report was built from: preset, data, seeds, date, package versions, devices."""

import sys

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
from _common import start  # noqa: E402
from spp.atomic import write_json  # noqa: E402
from spp.report.provenance import collect  # noqa: E402

log = start(snakemake)
p = snakemake.params
prov = collect(
    config=snakemake.config,
    seeds_per_table=p.seeds_per_table,
    datasets=p.datasets,
    train_dirs=p.train_dirs,
    repo_dir=p.repo_dir,
)
write_json(prov, snakemake.output[0])
log(f"provenance -> {snakemake.output[0]}")
