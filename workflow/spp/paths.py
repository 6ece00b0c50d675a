"""The results layout, in one place: stage folders, per-seed file names, the rules' patterns.

Every stage folder holds one file per seed; its path is the stage's tokens in order (root is
``results/<preset>``)::

    root/data/<dataset>.pt
    root/init/<dataset>/<model>/<init>/seed<k>.pt                            state_dict
    root/score/<dataset>/<model>/<init>/<score>/seed<k>.pt                    {name: score}
    root/mask/<dataset>/<model>/<init>/<score>/s<sparsity>/seed<k>.pt         {name: bool}
    root/repair/<dataset>/<model>/<init>/<score>/s<sparsity>/seed<k>.pt       state_dict after AI
    root/signal/<dataset>/<model>/<init>/<score>/s<sparsity>/<repair>/seed<k>.json
    root/train/<dataset>/<model>/<init>/<score>/s<sparsity>/<repair>/<train_dataset>/seed<k>/
        metrics.json, history.csv

Logs and benchmarks mirror a stage folder under ``root/logs/<stage>/`` and
``root/benchmarks/<stage>/`` (one file per folder, or per seed for one-job-per-seed training;
each job writes its own wall time, CPU time and peak memory there, ``spp.jobs``).
Training checkpoints lie beside the files of one seed's job, or beside the folder of a job that
trains a whole cell (Snakemake deletes a failed job's output folder; a retry must resume).
"""

from __future__ import annotations

from pathlib import Path

# Each stage's folder tokens, in path order (the Snakemake wildcards of its rule).
STAGE_TOKENS: dict[str, tuple[str, ...]] = {
    "init": ("dataset", "model", "init"),
    "score": ("dataset", "model", "init", "score"),
    "mask": ("dataset", "model", "init", "score", "sparsity"),
    "repair": ("dataset", "model", "init", "score", "sparsity"),
    "signal": ("dataset", "model", "init", "score", "sparsity", "repair"),
    "train": ("dataset", "model", "init", "score", "sparsity", "repair", "train_dataset"),
}
STAGES = tuple(STAGE_TOKENS)


def _segment(token: str, value) -> str:
    return f"s{value}" if token == "sparsity" else str(value)


def _relative(stage: str, tokens: dict) -> str:
    if stage not in STAGE_TOKENS:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    missing = [t for t in STAGE_TOKENS[stage] if t not in tokens]
    if missing:
        raise ValueError(f"stage {stage!r} needs tokens {missing} (has {sorted(tokens)})")
    return "/".join([stage, *(_segment(t, tokens[t]) for t in STAGE_TOKENS[stage])])


def stage_dir(root: str, stage: str, tokens) -> str:
    """The folder of ``stage`` for these tokens (a dict, or Snakemake's wildcards object)."""
    return f"{root}/{_relative(stage, dict(tokens.items()))}"


def _wildcards(stage: str) -> dict:
    return {t: "{" + t + "}" for t in STAGE_TOKENS[stage]}


def stage_pattern(root: str, stage: str) -> str:
    """The stage folder as a Snakemake pattern, ``{dataset}/.../s{sparsity}/...``."""
    return f"{root}/{_relative(stage, _wildcards(stage))}"


def _beside(kind: str, suffix: str, root: str, stage: str, rule: str | None,
            per_seed: bool) -> str:
    rel = _relative(stage, _wildcards(stage)).split("/", 1)[1]
    return f"{root}/{kind}/{rule or stage}/{rel}" + ("/seed{seed}" if per_seed else "") + suffix


def log_pattern(root: str, stage: str, rule: str | None = None, per_seed: bool = False) -> str:
    """A stage job's log: the folder's path under ``logs/<rule>`` (+ ``/seed{seed}``)."""
    return _beside("logs", ".log", root, stage, rule, per_seed)


def benchmark_pattern(root: str, stage: str, rule: str | None = None,
                      per_seed: bool = False) -> str:
    """A stage job's Snakemake benchmark, laid out as its log."""
    return _beside("benchmarks", ".tsv", root, stage, rule, per_seed)


def data_file(root: str, dataset: str) -> str:
    return f"{root}/data/{dataset}.pt"


def seed_tensors(folder, seed) -> Path:
    """One seed's tensors in an init / score / mask / repair folder."""
    return Path(folder) / f"seed{seed}.pt"


def seed_signal(folder, seed) -> Path:
    return Path(folder) / f"seed{seed}.json"


def seed_train_dir(folder, seed) -> Path:
    return Path(folder) / f"seed{seed}"


METRICS = "metrics.json"
HISTORY = "history.csv"


def seed_metrics(folder, seed) -> Path:
    return seed_train_dir(folder, seed) / METRICS


def seed_history(folder, seed) -> Path:
    return seed_train_dir(folder, seed) / HISTORY


def train_checkpoint(folder, seed: int | None = None, per_seed_job: bool = False) -> Path:
    """Where a training job checkpoints: inside one seed's folder for a one-seed job (Snakemake
    keeps it there), else beside the cell's folder, ``<folder>[.seed<k>].checkpoint.ckpt``."""
    folder = Path(folder)
    if per_seed_job:
        return folder / "checkpoint.ckpt"
    return folder.with_name(folder.name + ("" if seed is None else f".seed{seed}")
                            + ".checkpoint.ckpt")
