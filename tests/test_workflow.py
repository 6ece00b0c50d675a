"""The Snakemake workflow: dry runs of both presets, lint, config errors stopping it before any
job, and an end-to-end run of a reduced quick preset (every table, the figure and the report)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MY_RULE_FILES = ("Snakefile", "common.smk", "data.smk", "prune.smk", "train.smk",
                 "aggregate.smk")


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("Reasons:")[0]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+(\d+)$", table, flags=re.M)}


def test_quick_preset_dry_run_plans_every_table():
    r = snakemake("-n", "--nolock")
    assert r.returncode == 0, r.stderr + r.stdout
    jobs = job_counts(r.stdout)
    for rule in ("data", "init", "score", "mask", "repair", "signal", "train", "table1",
                 "table2", "table3", "table4", "table5", "figure3", "all"):
        assert rule in jobs, f"rule {rule} not planned: {jobs}"


def test_paper_preset_dry_run_offline_one_training_job_per_seed():
    sys.path.insert(0, str(REPO / "workflow"))
    from snakemake.utils import validate
    from spp import experiments as X

    r = snakemake("-n", "--nolock", "--configfile", "config/paper.yaml")
    assert r.returncode == 0, r.stderr + r.stdout
    jobs = job_counts(r.stdout)
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    validate(cfg, str(REPO / "config" / "config.schema.yaml"))
    tables = X.expand(cfg)
    trained = {}
    for rows in tables.values():
        for row in rows:
            for role, net in row["runs"].items():
                if "train" in row["needs"][role]:
                    trained.setdefault(net, set()).update(row["seeds"])
    # the paper tables' training jobs (other experiments may add more): one per seed
    assert jobs["train"] >= sum(len(s) for s in trained.values())
    assert jobs["data"] >= 4  # mnist, fashion-mnist, cifar10, tiny-imagenet: fetched at run time
    assert "gpu=1" in r.stdout  # training / scoring jobs ask for a GPU


def test_lint_clean_for_the_core_rule_files():
    r = snakemake("--lint")
    flagged = re.findall(r"Lints for (?:snakefile|rule \S+ \(line \d+,) (\S+?)\)?:", r.stdout)
    mine = [f for f in flagged if Path(f).name in MY_RULE_FILES]
    assert not mine, r.stdout


def write_config(tmp_path: Path, edit) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    edit(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.update(tabel1={}), ["tabel1", "Additional properties"]),
    (lambda c: c["table2"].update(sparsity=1.5), ["1.5", "sparsity"]),
    (lambda c: c["table4"].update(depths="3"), ["'3' is not of type 'array'", "depths"]),
    (lambda c: c["table3"]["networks"][0].update(arch="vgg19"),
     ["table3.networks[0].arch", "vgg19", "valid"]),
    (lambda c: c["figure3"].update(init="uniform"), ["figure3.init", "uniform", "valid"]),
    (lambda c: c["data"].update(mirror="no/such/folder"), ["data.mirror", "does not exist"]),
])
def test_config_errors_stop_before_any_job(tmp_path, edit, expected):
    cfg = write_config(tmp_path, edit)
    r = snakemake("-n", "--nolock", "--configfile", str(cfg), "--directory", str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode != 0
    for text in expected:
        assert text in out, out[-3000:]
    assert "Job stats" not in out


def reduced_quick(cfg: dict) -> None:
    """Every table and Figure 3 with every stage, on tiny settings (CI: 2 cores, minutes)."""
    cfg["preset"] = "e2e"
    cfg["scoring"] = {"batch_size": 100, "max_examples": 200}
    cfg["signal"] = {"batch_size": 10, "max_examples": 10}
    cfg["isometry"] = {"steps": 20, "lr": 0.1}
    small = {"iterations": 20, "batch_size": 32, "lr_decay_every": 15, "eval_every": 10,
             "checkpoint_every": 10}
    for recipe in cfg["training"].values():
        recipe.update(small)
    cfg["table1"]["gammas"] = [0.01, 10.0]
    cfg["table2"].update(rows=["LDI", "LDI-AI"], columns=[
        {"name": "ResNet32", "arch": "resnet32", "width": 0.125, "dataset": "cifar10"},
        {"name": "WRN16", "arch": "wrn-16-8", "width": 0.0625, "dataset": "cifar10-64"}],
        unsupervised_row={"columns": ["ResNet32"]})
    cfg["table3"].update(rows=["LDI"], activations=["tanh"],
                         networks=[{"name": "VGG16", "arch": "vgg16", "width": 0.125}])
    cfg["table4"].update(depths=[3], losses=["supervised", "unif"],
                         jacobian_losses={"losses": ["jac-l2"], "depths": [3]})
    cfg["table5"]["rows"] = [{"prune": "mnist", "train": "fashion-mnist"}]
    cfg["figure3"].update(base={"name": "ResNet20 (dense)", "arch": "resnet8", "width": 0.25},
                          variants=[{"name": "Equivalent 1 (wider)", "arch": "resnet8",
                                     "width": 0.5}])
    cfg["frankle"] = {"enabled": False}
    cfg["figures"] = {"enabled": False, "training_curves": False}


EXPECTED_ROWS = {"table1": 2, "table2": 2 * 2 + 1, "table3": 1, "table4": 3, "table5": 1,
                 "figure3": 2}


@pytest.mark.slow
def test_reduced_quick_preset_end_to_end_and_report(tmp_path):
    cfg = write_config(tmp_path, reduced_quick)
    args = ["--configfile", str(cfg), "--directory", str(tmp_path)]
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
