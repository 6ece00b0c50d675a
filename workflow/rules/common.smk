# Shared helpers (all functions of the .smk files live here): folder names from wildcards,
# seeds per folder, resources, input functions.
# The results layout is spp.paths (P); the experiment grid spp.tables.experiments (X).
import hashlib
import json
import re

SEEDS_BY_DIR = {}
for _net, _seeds in NETS.items():
    _dirs = [_net.stage_dir(R, _stage) for _stage in X.STAGES] + [_net.weights_dir(R)]
    for _d in _dirs:
        SEEDS_BY_DIR[_d] = sorted(set(SEEDS_BY_DIR.get(_d, [])) | set(_seeds))

GPU = int(config["gpu_per_job"])  # Snakemake resource `gpu` of the GPU-using jobs


def data_file(dataset):
    return P.data_file(R, dataset)


def net_dir(stage, wc):
    """The folder of `stage` for the net named by the wildcards `wc`."""
    return P.stage_dir(R, stage, wc)


def seeds_of(stage):
    """Params function: the seeds a stage folder holds (the union over the tables using it)."""

    def seeds(wc):
        return SEEDS_BY_DIR.get(net_dir(stage, wc), list(config["seeds"]))

    return seeds


def weights_dir(wc):
    """The weights that get measured and trained (spp.tables.experiments.weights_dir)."""
    return X.weights_dir(R, wc)


def net_params(wc):
    """Everything a script needs to rebuild the network of these wildcards."""
    return {
        **X.parse_model_token(wc.model),
        **X.parse_init_token(wc.init),
        "dataset": wc.dataset,
    }


SCRIPTS = REPO / "workflow" / "scripts"
# Every rule's software: the conda environment (`--sdm conda`), the workflow's container
# (`--sdm apptainer`, Snakefile) or the site's modules (`--sdm env-modules`, config `envmodules`).
CONDA_ENV = "../../envs/spp.yaml"  # relative to the rule files
ENVMODULES = list(config["envmodules"])


def script_code(script):
    """The `code` param of a rule: a digest of its script and of the library files that script
    runs (spp.codebase), so that an edit to code a stage uses reruns that stage."""
    return CODE.script_digest(SCRIPTS / script, REPO / "workflow")


def _mirror():
    m = config["data"]["mirror"]
    if not m:
        return None
    return m if Path(m).is_absolute() else str(REPO / m)


def _score_inputs(wc):
    inputs = {"init": net_dir("init", wc)}
    if METHODS.needs_data(X.parse_score_token(wc.score)["method"]):
        inputs["data"] = data_file(wc.dataset)
    return inputs


def _mask_inputs(wc):
    if wc.score == "dense":  # nothing pruned: the mask only needs the parameter names
        return {"init": net_dir("init", wc)}
    return {"init": net_dir("init", wc), "score": net_dir("score", wc)}


def _train_inputs(wc):
    return {
        "weights": weights_dir(wc),
        "mask": net_dir("mask", wc),
        "data": data_file(wc.train_dataset),
    }


def _recipe(wc):
    return config["training"][wc.train_dataset]


# Which training cells one job trains (every seed into one output folder, the `train` rule)
# and which get one job per seed (the `train_seed` rule). With train.stack_seeds, MLP cells
# always train their seeds stacked in one job (1.3-1.8x faster per CPU core);
# train.job_per_seed decides for the other cells. The two regexes are the two rules' `model`
# wildcard constraints, so every cell has exactly one rule that makes it.
MODEL_TOKEN = r"[^/_]+_[^/_]+_w[0-9.e+-]+"  # the Snakefile's global `model` constraint
MLP_MODEL_TOKEN = r"(?:mlp-[0-9]+-[a-z]+|lenet300)_[^/_]+_w[0-9.e+-]+"  # spp.nets.models.MLP nets
if not config["train"]["job_per_seed"]:
    PER_CELL_MODEL = MODEL_TOKEN
elif config["train"]["stack_seeds"]:
    PER_CELL_MODEL = MLP_MODEL_TOKEN
else:
    PER_CELL_MODEL = r"(?!)"  # matches nothing: every cell trains one job per seed
PER_SEED_MODEL = rf"(?!{PER_CELL_MODEL}/){MODEL_TOKEN}"  # the rest (a model is followed by /)


def trains_per_cell(model):
    """True when one job trains every seed of the cells of this `model` token (rule `train`)."""
    return re.fullmatch(PER_CELL_MODEL, model) is not None


def train_outputs(net, seeds):
    """The folder (one job per cell) or files (one job per seed) a table needs from `net`."""
    d = net.stage_dir(R, "train")
    if trains_per_cell(net.model_token):
        return [d]
    return [str(P.seed_metrics(d, s)) for s in seeds]


def table_rows(name):
    """The rows of a table as plain data for the script: labels and per-role folders."""
    rows = []
    for row in TABLES[name]:
        runs = {
            role: {
                "signal": net.stage_dir(R, "signal") if "signal" in row["needs"][role] else None,
                "train": net.stage_dir(R, "train") if "train" in row["needs"][role] else None,
                "seeds": row["seeds"],
                "net": net.to_dict(),
            }
            for role, net in row["runs"].items()
        }
        key = list(row["paper_key"]) if row["paper_key"] else None
        rows.append({"keys": row["keys"], "paper_key": key, "runs": runs})
    return rows


def table_rows_param(name):
    """A table's rows for its script, kept out of the report's params list (a screenful per
    job) and out of the rerun check: `rows_digest` stands in for them there."""
    return Unlisted(table_rows(name), label=f"{name} rows")


def rows_digest(name):
    """A short hash of a table's rows: the `params:` entry that tracks them."""
    blob = json.dumps(table_rows(name), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def table_inputs(name, stages=("signal", "train")):
    """The per-seed outputs of `stages` that a table's rows need (its training curves: train)."""
    files = []
    for row in TABLES.get(name, []):
        for role, net in row["runs"].items():
            if "signal" in stages and "signal" in row["needs"][role]:
                files.append(net.stage_dir(R, "signal"))
            if "train" in stages and "train" in row["needs"][role]:
                files += train_outputs(net, row["seeds"])
    return sorted(set(files))
