# spp: Lee et al. ICLR 2020 (and Frankle et al. 2021) as a Snakemake workflow.
#   snakemake --cores all                                   quick preset (config/config.yaml)
#   snakemake --cores all --configfile config/paper.yaml    the paper's full protocol
# Layout and rule graph: docs/workflow.md. Every config key: config/README.md.
import copy
import os
import sys
from pathlib import Path

import yaml
from snakemake.utils import min_version, update_config, validate

min_version("9.0")

# This repository's root: where this file is, also when another workflow uses it as a module
# (workflow.basedir is then that workflow's folder).
REPO = Path(workflow.current_basedir)
# The library lives in workflow/spp; importable here even without `pip install -e .`.
sys.path.insert(0, str(REPO / "workflow"))
from spp.tables import experiments as X  # noqa: E402
from spp import paths as P  # noqa: E402
from spp import codebase as CODE  # noqa: E402
from spp import jobs as JOBS  # noqa: E402
from spp.nets import catalog as NETS  # noqa: E402
from spp.pruning import catalog as METHODS  # noqa: E402
from spp.rule_params import ReportText, Unlisted  # noqa: E402

_DEFAULTS = REPO / "config" / "config.yaml"
# An edited config.yaml that does not parse: say where (Snakemake names neither file nor line).
if (_BAD_YAML := X.yaml_problem(_DEFAULTS)) is not None:
    X.refuse([_BAD_YAML])


configfile: str(_DEFAULTS)


# Used as a module (`module spp: snakefile: ...; config: ...`), Snakemake skips `configfile:`:
# the defaults go under the config given. Otherwise a no-op (config holds them already).
_GIVEN = copy.deepcopy(dict(config))
config.clear()
config.update(yaml.safe_load(_DEFAULTS.read_text()))
update_config(config, _GIVEN)

# `--config seeds=[0,1]` gives strings inside lists and dicts: numbers again before the schema
# (the command line's values only; a config file's strings stay as written).
update_config(config, X.coerce_overrides(dict(workflow.config_settings.overwrite_config or {})))

# Types, names and ranges of every key (unknown keys are errors), defaults filled in. The short
# check first: Snakemake's own message would print the whole schema after the useful line.
_PROBLEMS = X.schema_problems(config, REPO / "config" / "config.schema.yaml")
if _PROBLEMS:
    X.refuse(_PROBLEMS)
validate(config, str(REPO / "config" / "config.schema.yaml"))

from spp.data.specs import DATASETS  # noqa: E402

# A custom preset must not inherit the quick preset's "smoke test" note.
_QUICK = yaml.safe_load(_DEFAULTS.read_text())
config["preset_note"] = X.preset_note(config, _QUICK["preset_note"])

# Semantics the schema cannot see (architecture names, registries, folders), before any job.
try:
    X.validate(
        config,
        architectures=NETS.ARCHITECTURES,
        init_schemes=NETS.INIT_SCHEMES,
        score_methods=METHODS.methods(after_training=False),
        datasets=DATASETS,
        base_dir=str(REPO),
    )
    TABLES = X.expand(config)  # table name -> rows, each with the Nets it needs
except ValueError as e:
    X.refuse([str(e)])

# How jobs run (spp.jobs): each stops when this Snakemake process is gone; a warm interpreter
# only where Snakemake deploys no software (a deployed one runs every job in its own process).
os.environ[JOBS.OWNER] = str(os.getpid())
_DEPLOYS = bool(workflow.deployment_settings.deployment_method)
os.environ[JOBS.WARM] = "1" if config["warm_start"] and not _DEPLOYS else "0"

R = f"results/{config['preset']}"  # every output of this preset lives under R
NETS = X.all_nets(TABLES)  # distinct Net -> seeds (shared work appears once)
ALL_TARGETS = []  # rule files append what `snakemake` with no target builds


report: "report/workflow.rst"


# The image for `--sdm apptainer`, built from envs/Dockerfile (the conda environment of every rule).
container: config["container"]


wildcard_constraints:
    dataset=r"[a-z0-9-]+",
    train_dataset=r"[a-z0-9-]+",
    model=r"[^/_]+_[^/_]+_w[0-9.e+-]+",
    init=r"[^/]+",
    score=r"[^/]+",
    sparsity=r"[0-9.e+-]+",
    repair=r"none|ai|reinit-[a-z-]+",
    seed=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/frankle.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
