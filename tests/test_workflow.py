"""The Snakemake workflow: dry runs of both presets, lint, config errors stopping it before any
job, a killed stacked training job resuming, and an end-to-end run of a reduced quick preset
(every table, the figure and the report)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MY_RULE_FILES = ("Snakefile", "common.smk", "data.smk", "prune.smk", "train.smk",
                 "aggregate.smk")


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 600,
              env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("Reasons:")[0]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+(\d+)$", table, flags=re.M)}


def test_quick_preset_dry_run_plans_every_table():
    r = snakemake("-n", "--nolock")
    assert r.returncode == 0, r.stderr + r.stdout
    jobs = job_counts(r.stdout)
    for rule in ("data", "init", "score", "mask", "repair", "signal", "train", "figure3", "all"):
        assert rule in jobs, f"rule {rule} not planned: {jobs}"
    # One rule per family, one job per table: table1-table5 by `table`, figure3 by its own rule.
    assert jobs.get("table") == 5, jobs
    assert jobs.get("paper_layout") == jobs.get("training_curves") == 6, jobs


# A dry run through Snakemake's API, printing the planned training jobs with their evaluated
# params (the CLI's dry-run output has no params). `Workflow.dag` is not public API: if a
# Snakemake release moves it, this helper is what needs updating.
PLAN_TRAINING = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, DAGSettings, ExecutionSettings,
                                      OutputSettings, ResourceSettings, StorageSettings)
repo, configfiles = Path(sys.argv[1]), [Path(f) for f in sys.argv[2:]]
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(ResourceSettings(cores=1), ConfigSettings(configfiles=configfiles),
                      StorageSettings(), snakefile=repo / "Snakefile", workdir=repo)
    wf.dag(DAGSettings()).execute_workflow(
        executor="dryrun", execution_settings=ExecutionSettings(lock=False))
    jobs = [{"rule": j.rule.name, "output": str(j.output[0]), "seeds": list(j.params.seeds)}
            for j in wf._workflow.dag.jobs if j.rule.name in ("train", "train_seed")]
print("PLANNED " + json.dumps(jobs))
"""


def is_mlp(arch: str) -> bool:
    return re.fullmatch(r"mlp-\d+-[a-z]+|lenet300", arch) is not None


@pytest.mark.parametrize("stack_seeds", [True, False])
def test_paper_preset_dry_run_offline_training_jobs(tmp_path, stack_seeds):
    """Paper preset (train.job_per_seed: true): with stack_seeds (its setting) one stacked job
    per MLP cell with all the cell's seeds and one job per seed for the conv nets; without it,
    one job per seed for every cell."""
    sys.path.insert(0, str(REPO / "workflow"))
    from snakemake.utils import validate
    from spp.tables import experiments as X

    configfiles = [str(REPO / "config" / "paper.yaml")]
    if not stack_seeds:
        (tmp_path / "no_stacking.yaml").write_text("train: {stack_seeds: false}\n")
        configfiles.append(str(tmp_path / "no_stacking.yaml"))
    r = subprocess.run([sys.executable, "-c", PLAN_TRAINING, str(REPO), *configfiles],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    jobs = job_counts(out)
    planned = json.loads(out.split("PLANNED ", 1)[1].splitlines()[0])

    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert cfg["train"] == {"job_per_seed": True, "stack_seeds": True}
    validate(cfg, str(REPO / "config" / "config.schema.yaml"))
    trained = {}  # training folder -> (net, seeds the tables need)
    for rows in X.expand(cfg).values():
        for row in rows:
            for role, net in row["runs"].items():
                if "train" in row["needs"][role]:
                    d = net.stage_dir("results/paper", "train")
                    trained.setdefault(d, (net, set()))[1].update(row["seeds"])

    per_cell, per_seed = {}, {}
    for job in planned:
        if job["rule"] == "train":  # output: the cell's folder
            assert job["output"] not in per_cell
            per_cell[job["output"]] = job["seeds"]
        else:  # output: <cell>/seed<k>/metrics.json
            cell = str(Path(job["output"]).parent.parent)
            assert job["output"].endswith(f"/seed{job['seeds'][0]}/metrics.json")
            per_seed.setdefault(cell, []).extend(job["seeds"])
    assert set(per_cell) | set(per_seed) == set(trained)
    for cell, (net, seeds) in trained.items():
        if stack_seeds and is_mlp(net.arch):
            assert per_cell[cell] == sorted(seeds) and cell not in per_seed, cell
        else:
            assert sorted(per_seed[cell]) == sorted(seeds) and cell not in per_cell, cell
    mlp_runs = sum(len(s) for net, s in trained.values() if is_mlp(net.arch))
    assert mlp_runs and mlp_runs < sum(len(s) for _, s in trained.values())  # both kinds
    assert jobs.get("train", 0) == len(per_cell)
    assert jobs["train_seed"] == sum(len(s) for s in per_seed.values())
    if stack_seeds:  # every MLP cell of the paper trains 10 seeds
        assert jobs["train"] * 10 == mlp_runs
    assert jobs["data"] >= 4  # mnist, fashion-mnist, cifar10, tiny-imagenet: fetched at run time
    assert "gpu=1" in out  # training / scoring jobs ask for a GPU


def test_lint_clean_for_the_core_rule_files():
    r = snakemake("--lint")
    flagged = re.findall(r"Lints for (?:snakefile|rule \S+ \(line \d+,) (\S+?)\)?:", r.stdout)
    mine = [f for f in flagged if Path(f).name in MY_RULE_FILES]
    assert not mine, r.stdout


def test_script_jobs_import_this_checkouts_library(tmp_path):
    """Another copy of spp ahead of this one (a `pip install -e` of a different checkout) must not
    be what a job runs: Snakemake puts its own search paths after site-packages."""
    other = tmp_path / "other" / "spp"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the other checkout of spp')\n")
    r = snakemake("--cores", "1", "--directory", str(tmp_path / "run"),
                  "results/quick/data/mnist.pt", env={"PYTHONPATH": str(other.parent)})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "the other checkout" not in out
    assert (tmp_path / "run" / "results" / "quick" / "data" / "mnist.pt").stat().st_size > 0


def write_config(tmp_path: Path, edit) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    edit(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.update(tabel1={}), ["tabel1", "Additional properties"]),
    (lambda c: c["table2"].update(sparsity=1.5), ["1.5", "sparsity"]),
    (lambda c: c["table4"].update(depths="3"), ["3 is not of type 'array'", "depths"]),
    (lambda c: c["table3"]["networks"][0].update(arch="vgg19"),
     ["table3.networks[0].arch", "vgg19", "valid"]),
    (lambda c: c["figure3"].update(init="uniform"), ["figure3.init", "uniform", "valid"]),
    (lambda c: c["data"].update(mirror="no/such/folder"), ["data.mirror", "does not exist"]),
    (lambda c: c["train"].update(stack_seeds="yes"), ["'yes' is not of type 'boolean'",
                                                      "stack_seeds"]),
])
def test_config_errors_stop_before_any_job(tmp_path, edit, expected):
    cfg = write_config(tmp_path, edit)
    r = snakemake("-n", "--nolock", "--configfile", str(cfg), "--directory", str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode != 0
    for text in expected:
        assert text in out, out[-3000:]
    assert "Job stats" not in out


# The reduced quick preset (the snakemake-workflow-template's .test/ convention): every table
# and Figure 3 through every stage, on tiny settings (CI: 2 cores, minutes); a person can run it.
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


EXPECTED_ROWS = {"table1": 2, "table2": 2 * 2 + 1, "table3": 1, "table4": 3, "table5": 1,
                 "figure3": 2}


@pytest.mark.slow
def test_reduced_quick_preset_end_to_end_and_report(tmp_path):
    args = ["--configfile", str(TEST_CONFIG), "--directory", str(tmp_path)]
    r = snakemake("--cores", "2", *args, timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    check_outputs(tmp_path / "results" / "e2e")

    # a rerun has nothing left to do (all outputs up to date)
    r = snakemake("-n", *args)
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr

    report = tmp_path / "report.html"
    r = snakemake("--report", str(report), *args, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 10_000 and "table1.csv" in text and "figure3.png" in text

    # A damaged per-seed file: the table job fails naming it, and the last good table survives
    # Snakemake's removal of the job's outputs.
    tables = tmp_path / "results" / "e2e" / "tables"
    before = (tables / "table1.csv").read_text()
    assert (tables / "last-good" / "table1.csv").read_text() == before
    damaged = sorted((tmp_path / "results" / "e2e" / "train").glob("**/seed0/metrics.json"))
    for f in damaged:
        f.write_text("{not json")
    r = snakemake("--cores", "1", "--forcerun", "table", *args, "--",
                  "results/e2e/tables/table1.csv")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "metrics.json" in out and "delete the folder" in out, out[-3000:]
    assert "last-good" in out, out[-3000:]
    assert (tables / "last-good" / "table1.csv").read_text() == before


def check_outputs(results: Path) -> None:
    """Every table file has its rows, columns and finite values; the figure exists."""
    tables = results / "tables"
    for name, n_rows in EXPECTED_ROWS.items():
        df = pd.read_csv(tables / f"{name}.csv")
        assert len(df) == n_rows, name
        assert (df["preset"] == "e2e").all()
        assert (tables / f"{name}.md").is_file() and (tables / f"{name}.html").is_file()
        errors = ("error", "error_paper_protocol")
        if name == "table5":  # supervised, unsupervised and random pruning side by side
            errors = tuple(f"{q}_{role}" for q in errors for role in ("sup", "unsup", "rand"))
        for q in errors:
            assert (df[f"{q}_n"] == 2).all(), name
            assert df[f"{q}_mean"].between(0, 100).all(), name
            assert df[f"{q}_std"].map(math.isfinite).all(), name
        assert f"paper_{errors[-1]}" in df.columns
    t1 = pd.read_csv(tables / "table1.csv")
    for q in ("jsv_mean", "jsv_std", "os", "sparsity_l1", "sparsity_l7"):
        q = q if q != "os" else "jsv_cn"
        assert f"{q}_mean" in t1.columns and f"paper_{q}" in t1.columns
    assert t1.filter(like="sparsity_l").filter(like="_mean").apply(
        lambda c: c.between(0, 1)).all().all()
    # gamma = 0.01 is well conditioned: finite Jacobian statistics near the paper's 0.449
    assert 0.1 < t1.loc[t1.gamma == 0.01, "jsv_mean_mean"].item() < 2
    t2 = pd.read_csv(tables / "table2.csv")
    assert t2["os_mean"].map(math.isfinite).all()
    ldi = t2[(t2.init == "LDI") & (t2.network == "ResNet32")]["os_mean"].item()
    ai = t2[(t2.init == "LDI-AI") & (t2.network == "ResNet32")]["os_mean"].item()
    assert ai < ldi  # approximate isometry lowers the orthogonality score
    t5 = pd.read_csv(tables / "table5.csv")
    assert {"delta_mean", "error_paper_protocol_rand_mean", "paper_delta"} <= set(t5.columns)
    f3 = pd.read_csv(tables / "figure3.csv")
    assert (f3["params_kept"] - f3["params_kept"].iloc[0]).abs().max() <= 1
    figures = results / "figures"
    assert (figures / "figure3.png").stat().st_size > 0 and (figures / "figure3.svg").is_file()


# --------------------------------------------------- a killed stacked training job resumes
RESUME_ITERATIONS = 1200


def one_stacked_cell(cfg: dict) -> None:
    """Table 1's MLP with one gamma and two seeds, trained as one stacked job per cell (what
    train.stack_seeds does in both presets), checkpointing often; nothing else."""
    cfg["preset"] = "resume"
    cfg["seeds"] = [0, 1]
    cfg["scoring"] = {"batch_size": 100, "max_examples": 200}
    cfg["table1"]["gammas"] = [0.01]
    cfg["training"]["mnist"] = {"iterations": RESUME_ITERATIONS, "batch_size": 50,
                                "lr_decay_every": 1000, "eval_every": 400,
                                "checkpoint_every": 20}
    cfg["train"] = {"job_per_seed": True, "stack_seeds": True}


@pytest.mark.slow
def test_killed_stacked_training_job_resumes_from_its_checkpoint(tmp_path):
    """SIGTERM (a SLURM time limit's warning) to a stacked per-cell training job: it checkpoints
    and fails; Snakemake deletes its output folder, but not the checkpoint beside it, so the
    rerun resumes and ends with exactly the outputs of an uninterrupted run."""
    sys.path.insert(0, str(REPO / "workflow"))
    from snakemake.utils import validate
    from spp.jobs import logged_pid
    from spp.tables import experiments as X

    cfg_file = write_config(tmp_path, one_stacked_cell)
    cfg = yaml.safe_load(cfg_file.read_text())
    validate(cfg, str(REPO / "config" / "config.schema.yaml"))
    (row,) = X.expand(cfg)["table1"]
    rel = row["runs"]["main"].stage_dir("results/resume", "train")
    cell, ckpt = tmp_path / rel, tmp_path / f"{rel}.checkpoint.ckpt"
    log = tmp_path / rel.replace("results/resume/", "results/resume/logs/", 1)
    log = log.with_name(log.name + ".log")
    args = ["--cores", "1", "--configfile", str(cfg_file), "--directory", str(tmp_path), rel]

    # 1. Kill the training once it has written a checkpoint.
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    killed = []
    while not killed and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if ckpt.exists():
            killed = [pid for pid in [logged_pid(log)] if pid is not None]
            for pid in killed:
                os.kill(pid, signal.SIGTERM)
    if proc.poll() is None and time.monotonic() >= deadline:
        os.killpg(proc.pid, signal.SIGKILL)
    out = proc.communicate(timeout=120)[0]
    assert killed, f"no training process with a checkpoint seen:\n{out[-5000:]}"
    assert proc.returncode != 0 and "Error in rule train:" in out, out[-5000:]
    assert "exit status 143" in out, out[-5000:]
    assert ckpt.is_file() and not (cell / "seed0" / "metrics.json").exists()

    # 2. The rerun resumes from the checkpoint, then removes it.
    r = snakemake(*args)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    resumed = re.search(rf"\[train-stacked\] resumed from {re.escape(f'{rel}.checkpoint.ckpt')} "
                        rf"at iteration (\d+)/{RESUME_ITERATIONS}", log.read_text())
    assert resumed and 20 <= int(resumed.group(1)) < RESUME_ITERATIONS, log.read_text()
    assert not ckpt.exists()
    resumed_files = {f.relative_to(cell): f.read_bytes() for f in cell.glob("seed*/*")}
    assert set(resumed_files) == {Path(f"seed{s}/{n}") for s in (0, 1)
                                  for n in ("metrics.json", "history.csv")}

    # 3. Uninterrupted, the same job writes the same bytes.
    shutil.rmtree(cell)
    r = snakemake(*args)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    assert "resumed" not in log.read_text()
    for name, data in resumed_files.items():
        assert (cell / name).read_bytes() == data, name
