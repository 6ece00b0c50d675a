# Stages 2-5: init -> score -> mask -> (repair). One job per folder, all seeds of the folder in
# one job (each job pays the torch import once). LDI and LDI-AI share the init, score and mask
# folders; every table asking for the same pruned network shares its folders.

DATA_FREE = {"random", "magnitude", "synflow"}  # score methods that never read the data


rule init:
    output:
        directory(f"{R}/init/{{dataset}}/{{model}}/{{init}}"),
    params:
        net=net_params,
        seeds=seeds_of("init"),
    log:
        f"{R}/logs/init/{{dataset}}/{{model}}/{{init}}.log",
    conda:
        ENV
    script:
        "../scripts/init.py"


def _score_inputs(wc):
    inputs = {"init": net_dir("init", wc)}
    if X.parse_score_token(wc.score)["method"] not in DATA_FREE:
        inputs["data"] = data_file(wc.dataset)
    return inputs


rule score:
    input:
        unpack(_score_inputs),
    output:
        directory(f"{R}/score/{{dataset}}/{{model}}/{{init}}/{{score}}"),
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
        f"{R}/logs/score/{{dataset}}/{{model}}/{{init}}/{{score}}.log",
    benchmark:
        f"{R}/benchmarks/score/{{dataset}}/{{model}}/{{init}}/{{score}}.tsv"
    conda:
        ENV
    script:
        "../scripts/score.py"


def _mask_inputs(wc):
    if wc.score == "dense":  # nothing pruned: the mask only needs the parameter names
        return {"init": net_dir("init", wc)}
    return {"init": net_dir("init", wc), "score": net_dir("score", wc)}


rule mask:
    input:
        unpack(_mask_inputs),
    output:
        directory(f"{R}/mask/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}"),
    params:
        net=net_params,
        seeds=seeds_of("mask"),
        sparsity=lambda wc: float(wc.sparsity),
        dense=lambda wc: wc.score == "dense",
    log:
        f"{R}/logs/mask/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}.log",
    conda:
        ENV
    script:
        "../scripts/mask.py"


rule repair:
    input:
        init=lambda wc: net_dir("init", wc),
        mask=lambda wc: net_dir("mask", wc),
    output:
        directory(f"{R}/repair/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}"),
    params:
        net=net_params,
        seeds=seeds_of("repair"),
        steps=config["isometry"]["steps"],
        lr=config["isometry"]["lr"],
        device=config["device"],
    resources:
        gpu=GPU,
    log:
        f"{R}/logs/repair/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}.log",
    benchmark:
        f"{R}/benchmarks/repair/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}.tsv"
    conda:
        ENV
    script:
        "../scripts/repair.py"
