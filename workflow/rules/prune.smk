# Stages 2-5: init -> score -> mask -> (repair). One job per folder, all seeds of the folder in
# one job. LDI and LDI-AI share the init, score and mask folders; every table asking for the same
# pruned network shares its folders.

localrules: init, mask  # milliseconds of work: on a cluster, run by the login node's Snakemake


rule init:
    output:
        directory(P.stage_pattern(R, "init")),
    params:
        net=net_params,
        seeds=seeds_of("init"),
    log:
        P.log_pattern(R, "init"),
    run:
        run_script("init.py", "init", input, output, params, wildcards, threads, log)


rule score:
    input:
        unpack(_score_inputs),
    output:
        directory(P.stage_pattern(R, "score")),
    params:
        net=net_params,
        seeds=seeds_of("score"),
        score=lambda wc: X.parse_score_token(wc.score),
        batch_size=config["scoring"]["batch_size"],
        max_examples=config["scoring"]["max_examples"],
        device=config["device"],
    resources:
        gpu=GPU,
    log:
        P.log_pattern(R, "score"),
        usage=P.benchmark_pattern(R, "score"),
    run:
        run_script("score.py", "score", input, output, params, wildcards, threads, log)


rule mask:
    input:
        unpack(_mask_inputs),
    output:
        directory(P.stage_pattern(R, "mask")),
    params:
        net=net_params,
        seeds=seeds_of("mask"),
        sparsity=lambda wc: float(wc.sparsity),
        dense=lambda wc: wc.score == "dense",
    log:
        P.log_pattern(R, "mask"),
    run:
        run_script("mask.py", "mask", input, output, params, wildcards, threads, log)


rule repair:
    input:
        init=lambda wc: net_dir("init", wc),
        mask=lambda wc: net_dir("mask", wc),
    output:
        directory(P.stage_pattern(R, "repair")),
    params:
        net=net_params,
        seeds=seeds_of("repair"),
        steps=config["isometry"]["steps"],
        lr=config["isometry"]["lr"],
        device=config["device"],
    resources:
        gpu=GPU,
    log:
        P.log_pattern(R, "repair"),
        usage=P.benchmark_pattern(R, "repair"),
    run:
        run_script("repair.py", "repair", input, output, params, wildcards, threads, log)
