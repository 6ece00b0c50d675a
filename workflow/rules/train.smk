# Stages 6-7: signal-propagation measurements of the network that will be trained, then
# training. Training either trains every seed of a cell in one job (config train.job_per_seed:
# false; small runs) or one seed per job (true; long runs on GPUs or a cluster). The files are
# the same either way: <train folder>/seed<k>/{metrics.json, history.csv, checkpoint.ckpt}.

TRAIN_DIR = (
    f"{R}/train/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}/{{repair}}/{{train_dataset}}"
)
TRAIN_LOG = (
    f"{R}/logs/train/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}/{{repair}}/{{train_dataset}}"
)


rule signal:
    input:
        weights=weights_dir,
        mask=lambda wc: net_dir("mask", wc),
        data=lambda wc: data_file(wc.dataset),
    output:
        directory(f"{R}/signal/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}/{{repair}}"),
    params:
        net=net_params,
        seeds=seeds_of("signal"),
        batch_size=config["signal"]["batch_size"],
        max_examples=config["signal"]["max_examples"],
        device=config["device"],
    resources:
        gpu=GPU,
    log:
        f"{R}/logs/signal/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}/{{repair}}.log",
    benchmark:
        f"{R}/benchmarks/signal/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}/{{repair}}.tsv"
    conda:
        ENV
    script:
        "../scripts/signal.py"


if config["train"]["job_per_seed"]:

    rule train:
        input:
            unpack(_train_inputs),
        output:
            metrics=f"{TRAIN_DIR}/seed{{seed}}/metrics.json",
            history=f"{TRAIN_DIR}/seed{{seed}}/history.csv",
        params:
            net=net_params,
            seeds=lambda wc: [int(wc.seed)],
            recipe=_recipe,
            device=config["device"],
        resources:
            gpu=GPU,
        log:
            f"{TRAIN_LOG}/seed{{seed}}.log",
        benchmark:
            f"{R}/benchmarks/train/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}/{{repair}}/{{train_dataset}}/seed{{seed}}.tsv"
        conda:
            ENV
        script:
            "../scripts/train.py"

else:

    rule train:
        input:
            unpack(_train_inputs),
        output:
            directory(TRAIN_DIR),
        params:
            net=net_params,
            seeds=seeds_of("train"),
            recipe=_recipe,
            device=config["device"],
        resources:
            gpu=GPU,
        log:
            f"{TRAIN_LOG}.log",
        benchmark:
            f"{R}/benchmarks/train/{{dataset}}/{{model}}/{{init}}/{{score}}/s{{sparsity}}/{{repair}}/{{train_dataset}}.tsv"
        conda:
            ENV
        script:
            "../scripts/train.py"


