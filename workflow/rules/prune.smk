# Stages 2-5: init -> score -> mask -> (repair). One job per folder, all seeds of the folder in
# one job. LDI and LDI-AI share the init, score and mask folders; every table asking for the same
# pruned network shares its folders.


localrules:
    init,
    mask,  # milliseconds of work: on a cluster, run by the login node's Snakemake


rule init:
    output:
        directory(P.stage_pattern(R, "init")),
    log:
        P.log_pattern(R, "init"),
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    params:
        code=script_code("init.py"),
        net=net_params,
        seeds=seeds_of("init"),
    script:
        "../scripts/init.py"


rule score:
    input:
        unpack(_score_inputs),
    output:
        directory(P.stage_pattern(R, "score")),
    log:
        P.log_pattern(R, "score"),
        usage=P.benchmark_pattern(R, "score"),
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    resources:
        gpu=GPU,
    params:
        code=script_code("score.py"),
        net=net_params,
        seeds=seeds_of("score"),
        score=lambda wc: X.parse_score_token(wc.score),
        batch_size=config["scoring"]["batch_size"],
        max_examples=config["scoring"]["max_examples"],
        device=config["device"],
    script:
        "../scripts/score.py"


rule mask:
    input:
        unpack(_mask_inputs),
    output:
        directory(P.stage_pattern(R, "mask")),
    log:
        P.log_pattern(R, "mask"),
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    params:
        code=script_code("mask.py"),
        net=net_params,
        seeds=seeds_of("mask"),
        sparsity=lambda wc: float(wc.sparsity),
        dense=lambda wc: wc.score == "dense",
    script:
        "../scripts/mask.py"


rule repair:
    input:
        init=lambda wc: net_dir("init", wc),
        mask=lambda wc: net_dir("mask", wc),
    output:
        directory(P.stage_pattern(R, "repair")),
    log:
        P.log_pattern(R, "repair"),
        usage=P.benchmark_pattern(R, "repair"),
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    resources:
        gpu=GPU,
    params:
        code=script_code("repair.py"),
        net=net_params,
        seeds=seeds_of("repair"),
        steps=config["isometry"]["steps"],
        lr=config["isometry"]["lr"],
        device=config["device"],
    script:
        "../scripts/repair.py"
