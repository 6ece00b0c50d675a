# Frankle et al. 2021: error vs sparsity for SNIP, GraSP, SynFlow, magnitude (at init, after
# training) and random pruning, with the shuffle / reinit / invert ablations of every mask.
# Reuses the core `init` stage (the initial weights). `frankle_dense` trains the dense net per
# seed with the experiment's recipe and keeps its final weights (the train stage keeps no
# weights): the unpruned reference, and the start of magnitude-after-training. The pruned runs
# are one job per network x method (frankle.job_per_run: false, every sparsity and seed in one
# process) or per network x method x sparsity x seed (true):
# P/frankle/runs/<dataset>/<model>/<init>/<method>/<part>.json, a list of run rows
# (spp.frankle.runs.run_cells). Then P/tables/frankle.csv, the paper's five claims checked on it
# (P/tables/frankle_claims.csv, spp.frankle.claims) and P/figures/frankle.{png,svg}.


include: "frankle_common.smk"


if FRANKLE_ENABLED:

    FR_DENSE = f"{R}/frankle/dense/{{dataset}}/{{model}}/{{init}}/seed{{seed}}"

    rule frankle_dense:
        input:
            init=lambda wc: _fr_entry(wc)[1].stage_dir(R, "init"),
            data=lambda wc: data_file(wc.dataset),
        output:
            state=f"{FR_DENSE}.pt",
            rewind=f"{FR_DENSE}.rewind.pt",
            metrics=f"{FR_DENSE}.json",
        log:
            f"{R}/logs/frankle_dense/{{dataset}}/{{model}}/{{init}}/seed{{seed}}.log",
            usage=f"{R}/benchmarks/frankle_dense/{{dataset}}/{{model}}/{{init}}/seed{{seed}}.tsv",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        resources:
            gpu=GPU,
        params:
            code=script_code("frankle_dense.py"),
            net=net_params,
            rewind_iteration=lambda wc: int(_fr_entry(wc)[0].get("rewind_iteration", 0)),
            recipe=_fr_recipe,
            device=config["device"],
        script:
            "../scripts/frankle_dense.py"

    rule frankle_runs:
        input:
            unpack(_fr_inputs),
        output:
            f"{R}/frankle/runs/{{dataset}}/{{model}}/{{init}}/{{method}}/{{part}}.json",
        log:
            f"{R}/logs/frankle_runs/{{dataset}}/{{model}}/{{init}}/{{method}}/{{part}}.log",
            usage=f"{R}/benchmarks/frankle_runs/{{dataset}}/{{model}}/{{init}}/{{method}}/{{part}}.tsv",
        wildcard_constraints:
            method="|".join(FK.METHODS),
            part=r"all|s[0-9.e+-]+_seed\d+",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        resources:
            gpu=GPU,
        params:
            code=script_code("frankle_runs.py"),
            net=lambda wc: {**net_params(wc), "name": _fr_entry(wc)[0]["name"]},
            sparsities=lambda wc: _fr_part(wc)[0],
            seeds=lambda wc: _fr_part(wc)[1],
            ablations=FRANKLE["ablations"],
            recipe=_fr_recipe,
            scoring=FRANKLE["scoring"],
            options=lambda wc: FR_OPTIONS.get(wc.method, {}),
            device=config["device"],
        script:
            "../scripts/frankle_runs.py"

    FR_RUNS = [
        f"{R}/frankle/runs/{key[0]}/{key[1]}/{key[2]}/{m}/{part}.json"
        for key in FR_NETS
        for m in FRANKLE["methods"]
        for part in FR_PARTS
    ]
    FR_DENSE_METRICS = {  # network name -> dense metrics per seed (the figure's reference line)
        n["name"]: _fr_dense(key, FR_SEEDS, "json") for key, (n, net) in FR_NETS.items()
    }

    rule frankle_table:
        input:
            runs=FR_RUNS,
            dense=[f for files in FR_DENSE_METRICS.values() for f in files],
        output:
            csv=report(
                f"{R}/tables/frankle.csv",
                caption="../../report/frankle_table.rst",
                category="Frankle et al. 2021",
            ),
            runs=f"{R}/tables/frankle_runs.csv",
        log:
            f"{R}/logs/frankle_table.log",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("frankle_table.py"),
            dense=FR_DENSE_METRICS,
            preset=config["preset"],
        script:
            "../scripts/frankle_table.py"

    rule frankle_claims:
        input:
            f"{R}/tables/frankle.csv",
        output:
            report(
                f"{R}/tables/frankle_claims.csv",
                caption="../../report/frankle_claims.rst",
                category="Frankle et al. 2021",
            ),
        log:
            f"{R}/logs/frankle_claims.log",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("frankle_claims.py"),
            preset=config["preset"],
            tolerance_pp=float(FRANKLE["claims"]["tolerance_pp"]),
            highest=int(FRANKLE["claims"]["highest"]),
        script:
            "../scripts/frankle_claims.py"

    rule frankle_figure:
        input:
            table=f"{R}/tables/frankle.csv",
            claims=f"{R}/tables/frankle_claims.csv",
        output:
            png=report(
                f"{R}/figures/frankle.png",
                caption="../../report/frankle_figure.rst",
                category="Frankle et al. 2021",
            ),
            svg=f"{R}/figures/frankle.svg",
            claim=f"{R}/figures/frankle_claim.txt",
        log:
            f"{R}/logs/frankle_figure.log",
        conda:
            CONDA_ENV
        envmodules:
            *ENVMODULES,
        params:
            code=script_code("frankle_figure.py"),
            preset=config["preset"],
            note=config.get("preset_note", ""),
            # Read by the report caption when `snakemake --report` renders it (not a rerun
            # trigger: Snakemake only compares plain-value params).
            claim=ReportText(f"{R}/figures/frankle_claim.txt"),
        script:
            "../scripts/frankle_figure.py"

    ALL_TARGETS += [
        f"{R}/tables/frankle.csv",
        f"{R}/tables/frankle_claims.csv",
        f"{R}/figures/frankle.png",
        f"{R}/figures/frankle.svg",
    ]
