# Frankle et al. 2021: error vs sparsity for SNIP, GraSP, SynFlow, magnitude (at init, after
# training) and random pruning, with the shuffle / reinit / invert ablations of every mask.
# Reuses the core `init` stage (the initial weights). `frankle_dense` trains the dense net per
# seed with the experiment's recipe and keeps its final weights (the train stage keeps no
# weights): the unpruned reference, and the start of magnitude-after-training. The pruned runs
# are one job per network x method (frankle.job_per_run: false, every sparsity and seed in one
# process) or per network x method x sparsity x seed (true):
# P/frankle/runs/<dataset>/<model>/<init>/<method>/<part>.json, a list of run rows
# (spp.frankle.run_cells). Then P/tables/frankle.csv and P/figures/frankle.{png,svg}.

from spp import frankle as FK

FRANKLE = config.get("frankle") or {}

if FRANKLE.get("enabled", True):
    FK.check_names(FRANKLE["methods"], FRANKLE["ablations"])
    FR_SEEDS = list(FRANKLE.get("seeds") or config["seeds"])
    FR_SPARSITIES = [float(s) for s in FRANKLE["sparsities"]]

    def _fr_net(n):
        """The dense X.Net of a frankle network: its init folder, and its dense training."""
        return X.Net(dataset=n["dataset"], arch=n["arch"], activation=n.get("activation"),
                     width=float(n.get("width", 1.0)), init=n.get("init", "vs-he"), gamma=None,
                     method="dense", loss=None, sparsity=0.0, repair="none",
                     train_dataset=n["dataset"])

    FR_NETS = {}  # (dataset, model token, init token) -> (config entry, dense Net)
    for _n in FRANKLE["networks"]:
        _net = _fr_net(_n)
        FR_NETS[(_net.dataset, _net.model_token, _net.init_token)] = (_n, _net)
        _d = _net.stage_dir(R, "init")  # our seeds in the shared init folder
        SEEDS_BY_DIR[_d] = sorted(set(SEEDS_BY_DIR.get(_d, [])) | set(FR_SEEDS))

    if FRANKLE["job_per_run"]:
        FR_PARTS = [f"s{X.fmt(s)}_seed{k}" for s in FR_SPARSITIES for k in FR_SEEDS]
    else:
        FR_PARTS = ["all"]

    def _fr_entry(wc):
        return FR_NETS[(wc.dataset, wc.model, wc.init)]

    def _fr_part(wc):
        """(sparsities, seeds) of a job's part token."""
        if wc.part == "all":
            return FR_SPARSITIES, FR_SEEDS
        s, _, k = wc.part.partition("_seed")
        return [X.parse_sparsity_token(s)], [int(k)]

    def _fr_recipe(dataset):
        return {**config["training"][dataset], **FRANKLE["training"].get(dataset, {})}

    FR_DENSE = f"{R}/frankle/dense/{{dataset}}/{{model}}/{{init}}/seed{{seed}}"

    rule frankle_dense:
        input:
            init=lambda wc: _fr_entry(wc)[1].stage_dir(R, "init"),
            data=lambda wc: data_file(wc.dataset),
        output:
            state=f"{FR_DENSE}.pt",
            metrics=f"{FR_DENSE}.json",
        params:
            net=net_params,
            recipe=lambda wc: _fr_recipe(wc.dataset),
            device=config["device"],
        resources:
            gpu=GPU,
        log:
            f"{R}/logs/frankle_dense/{{dataset}}/{{model}}/{{init}}/seed{{seed}}.log",
        benchmark:
            f"{R}/benchmarks/frankle_dense/{{dataset}}/{{model}}/{{init}}/seed{{seed}}.tsv"
        conda:
            ENV
        script:
            "../scripts/frankle_dense.py"

    def _fr_dense(key, seeds, what):
        d, m, i = key
        return [f"{R}/frankle/dense/{d}/{m}/{i}/seed{k}.{what}" for k in seeds]

    def _fr_inputs(wc):
        n, net = _fr_entry(wc)
        inputs = {"init": net.stage_dir(R, "init"), "data": data_file(wc.dataset)}
        if wc.method == "magnitude-after-training":
            inputs["dense"] = _fr_dense((wc.dataset, wc.model, wc.init), _fr_part(wc)[1], "pt")
        return inputs

    rule frankle_runs:
        input:
            unpack(_fr_inputs),
        output:
            f"{R}/frankle/runs/{{dataset}}/{{model}}/{{init}}/{{method}}/{{part}}.json",
        wildcard_constraints:
            method="|".join(FK.METHODS),
            part=r"all|s[0-9.e+-]+_seed\d+",
        params:
            net=lambda wc: {**net_params(wc), "name": _fr_entry(wc)[0]["name"]},
            sparsities=lambda wc: _fr_part(wc)[0],
            seeds=lambda wc: _fr_part(wc)[1],
            ablations=FRANKLE["ablations"],
            recipe=lambda wc: _fr_recipe(wc.dataset),
            scoring=FRANKLE["scoring"],
            synflow_iterations=FRANKLE["synflow_iterations"],
            grasp_temperature=FRANKLE["grasp_temperature"],
            device=config["device"],
        resources:
            gpu=GPU,
        log:
            f"{R}/logs/frankle_runs/{{dataset}}/{{model}}/{{init}}/{{method}}/{{part}}.log",
        benchmark:
            f"{R}/benchmarks/frankle_runs/{{dataset}}/{{model}}/{{init}}/{{method}}/{{part}}.tsv"
        conda:
            ENV
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
            csv=report(f"{R}/tables/frankle.csv", caption="../../report/frankle_table.rst",
                       category="Frankle et al. 2021"),
            runs=f"{R}/tables/frankle_runs.csv",
        params:
            dense=FR_DENSE_METRICS,
            preset=config["preset"],
        log:
            f"{R}/logs/frankle_table.log",
        conda:
            ENV
        script:
            "../scripts/frankle_table.py"

    rule frankle_figure:
        input:
            f"{R}/tables/frankle.csv",
        output:
            png=report(f"{R}/figures/frankle.png", caption="../../report/frankle_figure.rst",
                       category="Frankle et al. 2021"),
            svg=f"{R}/figures/frankle.svg",
            claim=f"{R}/figures/frankle_claim.txt",
        params:
            preset=config["preset"],
            note=config.get("preset_note", ""),
            # Read by the report caption when `snakemake --report` renders it (not a rerun
            # trigger: Snakemake only compares plain-value params).
            claim=FK.ReportText(f"{R}/figures/frankle_claim.txt"),
        log:
            f"{R}/logs/frankle_figure.log",
        conda:
            ENV
        script:
            "../scripts/frankle_figure.py"

    ALL_TARGETS += [f"{R}/tables/frankle.csv", f"{R}/figures/frankle.png",
                    f"{R}/figures/frankle.svg"]
