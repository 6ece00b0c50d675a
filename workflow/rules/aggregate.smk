# Stage 8: one rule per table / figure. Reads the per-seed signal and training files of the
# table's cells and writes results/<preset>/tables/<name>.{csv,md,html}: one row per cell of the
# paper's table, mean / std / n per value, the paper's published value beside it.

PAPER_RESULTS = "config/paper_results.csv"


def table_rows(name):
    """The rows of a table as plain data for the script: labels and per-role folders."""
    rows = []
    for row in TABLES[name]:
        runs = {
            role: {
                "signal": net.stage_dir(R, "signal"),
                "train": net.stage_dir(R, "train"),
                "seeds": row["seeds"],
                "net": net.to_dict(),
            }
            for role, net in row["runs"].items()
        }
        rows.append({"keys": row["keys"], "paper_key": list(row["paper_key"]), "runs": runs})
    return rows


def table_inputs(name):
    files = []
    for row in TABLES.get(name, []):
        for net in row["runs"].values():
            files.append(net.stage_dir(R, "signal"))
            files += train_outputs(net, row["seeds"])
    return sorted(set(files))


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
            rows=table_rows(_table),
            preset=config["preset"],
            note=config["preset_note"],
            table=_table,
        log:
            f"{R}/logs/tables/{_table}.log",
        conda:
            ENV
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
            rows=table_rows("figure3"),
            preset=config["preset"],
            note=config["preset_note"],
            table="figure3",
        log:
            f"{R}/logs/tables/figure3.log",
        conda:
            ENV
        script:
            "../scripts/aggregate.py"


ALL_TARGETS += [f"{R}/tables/{name}.csv" for name in TABLES if name != "figure3"]
if "figure3" in TABLES:
    ALL_TARGETS += [f"{R}/tables/figure3.csv", f"{R}/figures/figure3.png"]
