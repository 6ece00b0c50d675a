# Shared helpers of the rule files: folder names from wildcards, seeds per folder, resources.
# Paths follow spp.experiments (see its docstring and docs/workflow.md).

SEEDS_BY_DIR = {}
for _net, _seeds in NETS.items():
    for _stage in ("init", "score", "mask", "repair", "signal", "train"):
        _d = _net.stage_dir(R, _stage)
        SEEDS_BY_DIR[_d] = sorted(set(SEEDS_BY_DIR.get(_d, [])) | set(_seeds))

ENV = "../../envs/spp.yaml"  # conda env of every rule (relative to the rule files)
GPU = int(config["gpu_per_job"])  # Snakemake resource `gpu` of the GPU-using jobs


def data_file(dataset):
    return f"{R}/data/{dataset}.pt"


def net_dir(stage, wc):
    """The folder of `stage` for the net named by the wildcards `wc`."""
    base = f"{R}/{stage}/{wc.dataset}/{wc.model}/{wc.init}"
    if stage == "init":
        return base
    if stage == "score":
        return f"{base}/{wc.score}"
    base = f"{base}/{wc.score}/s{wc.sparsity}"
    if stage in ("mask", "repair"):
        return base
    if stage == "signal":
        return f"{base}/{wc.repair}"
    return f"{base}/{wc.repair}/{wc.train_dataset}"


def seeds_of(stage):
    """Params function: the seeds a stage folder holds (the union over the tables using it)."""

    def seeds(wc):
        return SEEDS_BY_DIR.get(net_dir(stage, wc), list(config["seeds"]))

    return seeds


def weights_dir(wc):
    """The weights that get measured and trained: the init, or its AI repair."""
    return net_dir("repair" if wc.repair == "ai" else "init", wc)


def net_params(wc):
    """Everything a script needs to rebuild the network of these wildcards."""
    return {
        **X.parse_model_token(wc.model),
        **X.parse_init_token(wc.init),
        "dataset": wc.dataset,
    }
