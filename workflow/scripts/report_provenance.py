"""What this report was built from: preset, data, seeds, date, package versions, devices."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


from _common import start
from spp.atomic import write_json
from spp.report.provenance import collect

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
