# Figures 1 and 2 of Lee et al. 2020 (own small experiments on 7-layer MLPs), the training curves
# of every table, and the report's front page: provenance, paper-layout tables, paper-vs-ours
# summary with verdicts. Scripts: workflow/scripts/figure*.py, report_*.py; library:
# spp.tables.figure_experiments, spp.report.plotting, spp.report.report_tables, spp.tables.summary, spp.report.provenance.
# The experiments (figure*_data) may use a GPU; plotting and report pages take well under a
# second each, so they are local rules (on a cluster, run by the login node's Snakemake).


FIG = config["figures"]
FIG_DATASET = FIG["dataset"]
FIG_DATA = f"{R}/figures/data"
REPORT_DIR = f"{R}/report"
REPORT_TABLES = list(TABLES)  # table1..table5 (+ figure3): one CSV each

if FIG["enabled"]:

    rule figure1_data:
        input:
            data=data_file(FIG_DATASET),
        output:
            f"{FIG_DATA}/figure1_{{activation}}.pt",
        log:
            f"{R}/logs/figures/figure1_{{activation}}.log",
        wildcard_constraints:
            activation=r"[a-z]+",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("figure1_data.py"),
            sparsities=FIG["figure1"]["sparsities"],
            seed=FIG["seeds"][0],
            init=FIG["figure1"]["init"],
            gamma=FIG["figure1"]["gamma"],
            batch_size=FIG["batch_size"],
            examples=FIG["scoring_examples"],
        script:
            "../scripts/figure1_data.py"

    rule figure1:
        input:
            expand(f"{FIG_DATA}/figure1_{{a}}.pt", a=FIG["figure1"]["activations"]),
        output:
            png=report(
                f"{R}/figures/figure1.png",
                caption="../../report/figure1.rst",
                category="Figures",
                labels={"figure": "Figure 1", "format": "PNG"},
            ),
            svg=f"{R}/figures/figure1.svg",
        log:
            f"{R}/logs/figures/figure1.log",
        localrule: True
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("figure1.py"),
            activations=FIG["figure1"]["activations"],
            gamma=FIG["figure1"]["gamma"],
            init=FIG["figure1"]["init"],
            dataset=FIG_DATASET,
            preset=config["preset"],
        script:
            "../scripts/figure1.py"

    _FIG2_COMMON = dict(
        seeds=FIG["seeds"],
        vs_scheme=FIG["figure2"]["vs_scheme"],
        isometry=FIG["figure2"]["isometry"],
        batch_size=FIG["batch_size"],
        scoring_examples=FIG["scoring_examples"],
    )

    rule figure2_signal:
        input:
            data=data_file(FIG_DATASET),
        output:
            f"{FIG_DATA}/figure2a_{{activation}}.csv",
        log:
            f"{R}/logs/figures/figure2a_{{activation}}.log",
        wildcard_constraints:
            activation=r"[a-z]+",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            **_FIG2_COMMON,
            code=script_code("figure2_data.py"),
            panel="a",
            methods=FIG["figure2"]["methods"],
            sparsities=FIG["figure2"]["sparsities"],
            jacobian_examples=FIG["jacobian_examples"],
        script:
            "../scripts/figure2_data.py"

    rule figure2_training:
        input:
            data=data_file(FIG_DATASET),
        output:
            f"{FIG_DATA}/figure2b_{{activation}}.csv",
        log:
            f"{R}/logs/figures/figure2b_{{activation}}.log",
        wildcard_constraints:
            activation=r"[a-z]+",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        resources:
            gpu=GPU,
        params:
            **_FIG2_COMMON,
            code=script_code("figure2_data.py"),
            panel="b",
            training=FIG["figure2"]["training"],
            device=config["device"],
        script:
            "../scripts/figure2_data.py"

    rule figure2:
        input:
            signal=expand(f"{FIG_DATA}/figure2a_{{a}}.csv", a=FIG["figure2"]["activations"]),
            training=expand(f"{FIG_DATA}/figure2b_{{a}}.csv", a=FIG["figure2"]["activations"]),
        output:
            a_png=report(
                f"{R}/figures/figure2a.png",
                caption="../../report/figure2.rst",
                category="Figures",
                labels={"figure": "Figure 2a", "format": "PNG"},
            ),
            a_svg=f"{R}/figures/figure2a.svg",
            b_png=report(
                f"{R}/figures/figure2b.png",
                caption="../../report/figure2.rst",
                category="Figures",
                labels={"figure": "Figure 2b", "format": "PNG"},
            ),
            b_svg=f"{R}/figures/figure2b.svg",
        log:
            f"{R}/logs/figures/figure2.log",
        localrule: True
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("figure2.py"),
            title_a=f"Figure 2a: signal propagation in pruned MLPs [{config['preset']} preset]",
            title_b=(
                f"Figure 2b: training at κ={100 * FIG['figure2']['training']['sparsity']:.0f}% "
                f"[{config['preset']} preset]"
            ),
        script:
            "../scripts/figure2.py"

    ALL_TARGETS += [f"{R}/figures/figure1.png", f"{R}/figures/figure2a.png"]


if FIG["training_curves"]:

    rule training_curves:
        input:
            runs=lambda wc: table_inputs(wc.table, stages=("train",)),
        output:
            png=report(
                f"{R}/figures/training_{{table}}.png",
                caption="../../report/training_curves.rst",
                category="Training curves",
                labels={"table": "{table}", "format": "PNG"},
            ),
            svg=f"{R}/figures/training_{{table}}.svg",
        log:
            f"{R}/logs/figures/training_{{table}}.log",
        wildcard_constraints:
            table="|".join(TABLES) or "(?!)",
        localrule: True
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("figure_training_curves.py"),
            table=lambda wc: wc.table,
            rows_digest=lambda wc: rows_digest(wc.table),
            rows=lambda wc: table_rows_param(wc.table),
            title=lambda wc: wc.table.replace("table", "Table ").replace("figure", "Figure "),
            preset=config["preset"],
        script:
            "../scripts/figure_training_curves.py"

    ALL_TARGETS += [f"{R}/figures/training_{t}.png" for t in TABLES]


rule paper_layout:
    input:
        f"{R}/tables/{{table}}.csv",
    output:
        report(
            f"{REPORT_DIR}/{{table}}_paper_layout.html",
            caption="../../report/tables.rst",
            category="Tables",
            labels={"table": "{table}", "format": "paper layout"},
        ),
    log:
        f"{R}/logs/report/{{table}}_paper_layout.log",
    wildcard_constraints:
        table="|".join(REPORT_TABLES) or "(?!)",
    localrule: True
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    params:
        code=script_code("report_table.py"),
        table=lambda wc: wc.table,
        preset=config["preset"],
        comparable=FIG["summary"]["comparable"],
    script:
        "../scripts/report_table.py"


ALL_TARGETS += [f"{REPORT_DIR}/{t}_paper_layout.html" for t in REPORT_TABLES]


# Datasets the report's numbers come from (tables and figures), for the front page.
DATASETS_USED = sorted(
    {net.dataset for net in NETS}
    | {net.train_dataset for net in NETS}
    | ({FIG_DATASET} if FIG["enabled"] else set())
)


rule report_provenance:
    input:
        tables=[f"{R}/tables/{t}.csv" for t in REPORT_TABLES],
    output:
        f"{REPORT_DIR}/provenance.json",
    log:
        f"{R}/logs/report/provenance.log",
    localrule: True
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    params:
        code=script_code("report_provenance.py"),
        seeds_per_table={t: TABLES[t][0]["seeds"] for t in TABLES if TABLES[t]},
        datasets=DATASETS_USED,
        train_dirs=sorted({net.stage_dir(R, "train") for net in NETS}),
        repo_dir=str(REPO),
    script:
        "../scripts/report_provenance.py"


rule report_summary:
    input:
        **({"claims": f"{R}/tables/frankle_claims.csv"} if FRANKLE_ENABLED else {}),
        tables=[f"{R}/tables/{t}.csv" for t in REPORT_TABLES],
        provenance=f"{REPORT_DIR}/provenance.json",
    output:
        html=report(
            f"{REPORT_DIR}/summary.html",
            caption="../../report/summary.rst",
            category="Summary",
            labels={"content": "paper vs ours, every cell"},
        ),
        csv=f"{REPORT_DIR}/summary.csv",
        front=f"{REPORT_DIR}/front.html",
    log:
        f"{R}/logs/report/summary.log",
    localrule: True
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    params:
        code=script_code("report_summary.py"),
        tolerances=FIG["summary"]["tolerances"],  # a param so that changing one reruns this
        comparable=FIG["summary"]["comparable"],
        preset=config["preset"],
    script:
        "../scripts/report_summary.py"


ALL_TARGETS += [f"{REPORT_DIR}/summary.html"]

# The report's front page (report/workflow.rst) includes this preset's front-page fragment with
# docutils' `raw:: html` + `:file:`, whose path must exist when `snakemake --report` renders it;
# before the summary is built it includes a placeholder saying so. The key is set here, after
# schema validation, and is read only by workflow.rst.
_front = Path(REPORT_DIR, "front.html").resolve()  # results live in the working directory
config["_report_front_page"] = str(
    _front if _front.is_file() else REPO / "report" / "front_missing.html"
)
