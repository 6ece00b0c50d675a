# Stage 8: one rule per table / figure. Reads the per-seed signal and training files of the
# table's cells and writes results/<preset>/tables/<name>.{csv,md,html}: one row per cell of the
# paper's table, mean / std / n per value, the paper's published value beside it.

PAPER_RESULTS = str(Path(workflow.basedir) / "config" / "paper_results.csv")


for _table in [t for t in TABLES if t != "figure3"]:

    rule:
        name:
            f"{_table}"
        input:
            runs=table_inputs(_table),
            paper=PAPER_RESULTS,
        output:
            csv=report(
                f"{R}/tables/{_table}.csv",
                caption=f"../../report/{_table}.rst",
                category="Tables",
                labels={"table": _table, "format": "CSV"},
            ),
            md=f"{R}/tables/{_table}.md",
            html=report(
                f"{R}/tables/{_table}.html",
                caption=f"../../report/{_table}.rst",
                category="Tables",
                labels={"table": _table, "format": "HTML"},
            ),
        params:
            rows_digest=rows_digest(_table),
            preset=config["preset"],
            note=config["preset_note"],
            table=_table,
        log:
            f"{R}/logs/tables/{_table}.log",
        localrule: True
        run:
            run_inprocess(
                "aggregate.py",
                params.table,
                input,
                output,
                table_params(params, params.table),
                wildcards,
                threads,
                log,
            )


if "figure3" in TABLES:

    rule figure3:
        input:
            runs=table_inputs("figure3"),
            paper=PAPER_RESULTS,
        output:
            csv=report(
                f"{R}/tables/figure3.csv",
                caption="../../report/figure3_table.rst",
                category="Tables",
                labels={"table": "figure3", "format": "CSV"},
            ),
            md=f"{R}/tables/figure3.md",
            html=report(
                f"{R}/tables/figure3.html",
                caption="../../report/figure3_table.rst",
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
        params:
            rows_digest=rows_digest("figure3"),
            preset=config["preset"],
            note=config["preset_note"],
            table="figure3",
        log:
            f"{R}/logs/tables/figure3.log",
        localrule: True
        run:
            run_inprocess(
                "aggregate.py",
                "figure3",
                input,
                output,
                table_params(params, "figure3"),
                wildcards,
                threads,
                log,
            )


ALL_TARGETS += [f"{R}/tables/{name}.csv" for name in TABLES if name != "figure3"]
if "figure3" in TABLES:
    ALL_TARGETS += [f"{R}/tables/figure3.csv", f"{R}/figures/figure3.png"]
