# Stages 6-7: signal-propagation measurements of the network that will be trained, then
# training, by one of two rules (which cells each one makes: PER_CELL_MODEL in common.smk):
#   train       one job per cell trains every seed into the cell's folder (MLP seeds stacked,
#               spp.train.stacked). Its checkpoints lie beside that folder, not in it
#               (<folder>.checkpoint.ckpt, or <folder>.seed<k>.checkpoint.ckpt one seed at a
#               time): Snakemake deletes a failed job's output folder, and a retry must resume.
#   train_seed  one job per seed, its checkpoint.ckpt beside its files (Snakemake keeps it).
# train.stack_seeds sends MLP cells to `train`; train.job_per_seed decides for the others.
# The same files either way, <train folder>/seed<k>/{metrics.json, history.csv}, under the same
# protocol and data order; the numbers equal up to float summation order (docs/workflow.md).

TRAIN_DIR = P.stage_pattern(R, "train")


rule signal:
    input:
        weights=weights_dir,
        mask=lambda wc: net_dir("mask", wc),
        data=lambda wc: data_file(wc.dataset),
    output:
        directory(P.stage_pattern(R, "signal")),
    log:
        P.log_pattern(R, "signal"),
        usage=P.benchmark_pattern(R, "signal"),
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    resources:
        gpu=GPU,
    params:
        code=script_code("signal.py"),
        net=net_params,
        seeds=seeds_of("signal"),
        batch_size=config["signal"]["batch_size"],
        max_examples=config["signal"]["max_examples"],
        device=config["device"],
    script:
        "../scripts/signal.py"


rule train:
    input:
        unpack(_train_inputs),
    output:
        directory(TRAIN_DIR),
    log:
        P.log_pattern(R, "train"),
        usage=P.benchmark_pattern(R, "train"),
    wildcard_constraints:
        model=PER_CELL_MODEL,
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    resources:
        gpu=GPU,
    params:
        code=script_code("train.py"),
        net=net_params,
        seeds=seeds_of("train"),
        recipe=_recipe,
        device=config["device"],
    script:
        "../scripts/train.py"


rule train_seed:
    input:
        unpack(_train_inputs),
    output:
        metrics=str(P.seed_metrics(TRAIN_DIR, "{seed}")),
        history=str(P.seed_history(TRAIN_DIR, "{seed}")),
    log:
        P.log_pattern(R, "train", per_seed=True),
        usage=P.benchmark_pattern(R, "train", per_seed=True),
    wildcard_constraints:
        model=PER_SEED_MODEL,
    conda:
        CONDA_ENV
    envmodules:
        *ENVMODULES,
    resources:
        gpu=GPU,
    params:
        code=script_code("train.py"),
        net=net_params,
        seeds=lambda wc: [int(wc.seed)],
        recipe=_recipe,
        device=config["device"],
    script:
        "../scripts/train.py"
