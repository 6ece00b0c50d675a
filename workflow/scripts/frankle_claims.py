"""P/tables/frankle.csv -> P/tables/frankle_claims.csv: the paper's five claims, each with its
verdict per network and the numbers behind it (spp.frankle.claims)."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)


import pandas as pd
import spp.frankle.claims
from _common import start
from spp.atomic import write_csv

log = start(snakemake)
p = snakemake.params
claims = spp.frankle.claims.check(pd.read_csv(snakemake.input[0]), tolerance_pp=p.tolerance_pp,
                                  highest=p.highest)
claims.insert(0, "preset", p.preset)
write_csv(claims, snakemake.output[0])
for r in claims.itertuples():
    log(f"{r.network} claim {r.claim} ({r.statement}): {r.verdict}. {r.evidence}")
