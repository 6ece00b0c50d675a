"""Paper versus ours for every table cell: summary CSV + HTML page, and the front-page fragment."""

from _job import enter  # first: the rest runs once, warm or here (spp.jobs)

enter(snakemake)

import json
from pathlib import Path

import pandas as pd
from _common import start
from spp.atomic import write_text
from spp.tables import summary as S

log = start(snakemake)
p = snakemake.params
out = snakemake.output
tables = {Path(f).stem: pd.read_csv(f) for f in snakemake.input.tables}
summary = S.rows_in_order(S.summarize(tables, p.tolerances, p.comparable), list(tables))
rule = S.rule_text(p.tolerances)
prov = json.loads(Path(snakemake.input.provenance).read_text())


write_text(out.csv, summary.to_csv(index=False))
note = snakemake.config["preset_note"]  # not a param: see report_table.py
body = S.summary_html(summary, p.preset, p.comparable, rule, note=note)
title = f"Paper versus ours, every table cell [{p.preset} preset]"
write_text(out.html, S.standalone_page(title, body))
claims = pd.read_csv(snakemake.input.claims) if "claims" in snakemake.input.keys() else None
write_text(out.front, S.front_page_html(prov, summary, p.comparable, rule, claims))
log(f"summary: {S.verdict_counts(summary)} -> {out.html}")
