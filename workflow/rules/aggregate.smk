# Stage 8: rule `table` (table1-table5) and rule `figure3`. Each reads the per-seed signal and
# training files of its table's cells and writes results/<preset>/tables/<name>.{csv,md,html}: one row per cell of the
# paper's table, mean / std / n per value, the paper's published value beside it.

PAPER_RESULTS = str(REPO / "config" / "paper_results.csv")


CORE_TABLES = [t for t in TABLES if t != "figure3"]  # figure3 also draws its figure (below)
TABLE_CAPTION = "../../report/tables.rst"  # one section per table, picked by params.table

if CORE_TABLES:

    rule table:
        input:
            runs=lambda wc: table_inputs(wc.table),
            paper=PAPER_RESULTS,
        output:
            csv=report(
                f"{R}/tables/{{table}}.csv",
                caption=TABLE_CAPTION,
                category="Tables",
                labels={"table": "{table}", "format": "CSV"},
            ),
            md=f"{R}/tables/{{table}}.md",
            html=report(
                f"{R}/tables/{{table}}.html",
                caption=TABLE_CAPTION,
                category="Tables",
                labels={"table": "{table}", "format": "HTML"},
            ),
        log:
            f"{R}/logs/tables/{{table}}.log",
        wildcard_constraints:
            table="|".join(CORE_TABLES),
        localrule: True
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("aggregate.py"),
            rows_digest=lambda wc: rows_digest(wc.table),
            rows=lambda wc: table_rows_param(wc.table),
            preset=config["preset"],
            note=config["preset_note"],
            table=lambda wc: wc.table,
        script:
            "../scripts/aggregate.py"


if "figure3" in TABLES:

    rule figure3:
        input:
            runs=table_inputs("figure3"),
            paper=PAPER_RESULTS,
        output:
            csv=report(
                f"{R}/tables/figure3.csv",
                caption=TABLE_CAPTION,
                category="Tables",
                labels={"table": "figure3", "format": "CSV"},
            ),
            md=f"{R}/tables/figure3.md",
            html=report(
                f"{R}/tables/figure3.html",
                caption=TABLE_CAPTION,
                category="Tables",
                labels={"table": "figure3", "format": "HTML"},
            ),
            png=report(
                f"{R}/figures/figure3.png",
                caption="../../report/figure3.rst",
                category="Figures",
                labels={"figure": "figure3", "format": "PNG"},
            ),
            svg=f"{R}/figures/figure3.svg",
        log:
            f"{R}/logs/tables/figure3.log",
        localrule: True
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("aggregate.py"),
            rows_digest=rows_digest("figure3"),
            rows=table_rows_param("figure3"),
            preset=config["preset"],
            note=config["preset_note"],
            table="figure3",
        script:
            "../scripts/aggregate.py"


ALL_TARGETS += [f"{R}/tables/{name}.csv" for name in CORE_TABLES]
if "figure3" in TABLES:
    ALL_TARGETS += [f"{R}/tables/figure3.csv", f"{R}/figures/figure3.png"]
