"""Paper versus ours for every table cell: summary CSV + HTML page, and the front-page fragment."""

import json
import sys
from pathlib import Path

if snakemake.scriptdir not in sys.path:
    sys.path.insert(0, snakemake.scriptdir)
import pandas as pd  # noqa: E402
from _common import start  # noqa: E402
from spp.atomic import write_text  # noqa: E402
from spp.tables import summary as S  # noqa: E402

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
