# Stages 6-7: signal-propagation measurements of the network that will be trained, then
# training, by one of two rules (which cells each one makes: PER_CELL_MODEL in common.smk):
#   train       one job per cell trains every seed into the cell's folder (MLP seeds stacked,
#               spp.stacked). Its checkpoints lie beside that folder, not in it
#               (<folder>.checkpoint.ckpt, or <folder>.seed<k>.checkpoint.ckpt one seed at a
#               time): Snakemake deletes a failed job's output folder, and a retry must resume.
#   train_seed  one job per seed, its checkpoint.ckpt beside its files (Snakemake keeps it).
# train.stack_seeds sends MLP cells to `train`; train.job_per_seed decides for the others.
# The same files either way, <train folder>/seed<k>/{metrics.json, history.csv}, under the same
# protocol and data order; the numbers equal up to float summation order (docs/workflow.md).

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
    wildcard_constraints:
        model=PER_CELL_MODEL,
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


rule train_seed:
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
    wildcard_constraints:
        model=PER_SEED_MODEL,
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
