"""The SLURM profile against a real SLURM controller: a single-node cluster on localhost.

The cluster (tests/slurm_cluster.py) runs slurmctld, slurmd and munged from Debian's packages with
no accounting database, so the plugin polls job states with squeue. The tests submit through
``snakemake --profile <profiles/slurm, adapted>``: the real profile with only what a CPU-only test
node forces changed (partition ``debug``, no GPU, small memory, fast polling; see
``adapted_profile``). They skip only where the SLURM/MUNGE programs are not installed or the
user is not root (slurmd must be); any other trouble bringing the cluster up fails them.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, missing_binaries

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip(f"SLURM/MUNGE not installed (missing: {', '.join(missing)}); on Debian: "
                    "apt-get install slurmctld slurmd slurm-client munge")
    if os.geteuid() != 0:
        pytest.skip("the SLURM test runs slurmd, which starts jobs as their user, so it needs "
                    "root (as in CI); run it as root or in a throwaway container")
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def adapted_profile(dest: Path, **settings) -> Path:
    """profiles/slurm with what this CPU-only one-node test cluster requires, written to dest.

    Changed: partition ``debug`` everywhere; no ``gpu``/``gpu_model``; 1 CPU and <= 1 GB per
    job (two jobs fit the 2-core CI machine); status polling after 2 s instead of 40 s; logs
    of successful jobs kept, so the test can read them. Everything else (retries, requeue,
    squeue polling, runtimes, --signal, keep-going, ...) is the shipped profile's.
    """
    cfg = yaml.safe_load(PROFILE.read_text())
    assert cfg["executor"] == "slurm"
    small = {"slurm_partition": "debug", "mem_mb": 1000, "cpus_per_task": 1}
    cfg["default-resources"] = {**cfg["default-resources"], **small}
    for res in cfg["set-resources"].values():
        res.pop("gpu", None)
        res.pop("gpu_model", None)
        res.update(small)
    cfg.update({
        "slurm-init-seconds-before-status-checks": 2,
        "slurm-keep-successful-logs": True,
        "latency-wait": 5,
    })
    cfg.update(settings)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


class SnakemakeRun:
    """``snakemake`` as a child process whose output is collected while it runs."""

    def __init__(self, cluster: SlurmCluster, args: list[str], cwd: Path):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args], cwd=cwd, env=cluster.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def submissions(self) -> list[tuple[str, str, str]]:
        """(rule, SLURM job id, SLURM log path) of every job submitted so far."""
        out = []
        for m in SUBMITTED.finditer(self.output):
            log = m.group(3)
            rule = re.search(r"/rule_([^/]+)/", log)
            out.append((rule.group(1) if rule else "?", m.group(2), log))
        return out

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self._reader.join(5)
            pytest.fail(f"snakemake did not finish within {timeout:.0f} s:\n{self.output[-6000:]}")
        self._reader.join(5)
        return rc


TINY_SNAKEFILE = r"""
rule all:
    input: "trained.txt", "fails.txt"

rule data:
    output: "data.txt"
    shell: "echo $SLURM_JOB_ID > {output}"

rule train:
    input: "data.txt"
    output: "trained.txt"
    shell: "cat {input} > {output}; echo $SLURM_JOB_ID >> {output}"

rule fails:
    output: "fails.txt"
    retries: 0
    shell: "echo 'deliberate failure in rule fails' >&2; exit 3"
"""


def test_jobs_go_through_sbatch_and_a_failure_keeps_finished_results(cluster, tmp_path):
    """Rule names as in the workflow, so the profile's per-rule settings apply to them."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "Snakefile").write_text(TINY_SNAKEFILE)
    profile = adapted_profile(tmp_path / "profile")
    run = SnakemakeRun(cluster, ["--profile", str(profile), "--snakefile", "Snakefile",
                                 "--verbose"], work)
    rc = run.wait(timeout=300)
    out = run.output
    assert rc != 0, f"the deliberately failing job must fail the run:\n{out}"

    subs = {rule: (jobid, log) for rule, jobid, log in run.submissions()}
    assert set(subs) == {"data", "train", "fails"}, out
    states = cluster.job_states()
    # Each job ran inside the SLURM job Snakemake submitted: it wrote that job's id.
    assert (work / "data.txt").read_text().split() == [subs["data"][0]]
    assert (work / "trained.txt").read_text().split() == [subs["data"][0], subs["train"][0]]
    assert states[subs["data"][0]] == "COMPLETED", states
    assert states[subs["train"][0]] == "COMPLETED", states
    # The profile's settings reached sbatch, and sbatch accepted them: requeue for every job,
    # the time-limit warning and the 6 h limit for training.
    calls = {m.group(1): m.group(0) for m in
             re.finditer(r"sbatch call: sbatch .*?--comment '?rule_(\w+?)[_' ].*", out)}
    assert set(calls) >= {"data", "train", "fails"}, calls
    assert all(" --requeue" in c for c in calls.values()), calls
    assert "--signal=TERM@180" in calls["train"] and " -t 360" in calls["train"], calls["train"]
    assert "--signal" not in calls["data"], calls["data"]
    # The failure is SLURM's (FAILED), its log path is in Snakemake's output, and the log says why.
    fail_id, fail_log = subs["fails"]
    assert states[fail_id] == "FAILED", states
    assert re.search(rf"Error in rule fails:.*?{re.escape(fail_log)}", out, re.S), out
    assert "deliberate failure in rule fails" in Path(fail_log).read_text()
    assert not (work / "fails.txt").exists()
    # Finished results stay, and with keep-going the job after a finished one still ran.
    assert (work / "data.txt").is_file() and (work / "trained.txt").is_file()


# The reduced quick preset: Table 1 with one gamma and two seeds (9 jobs: data, init, score,
# 2 masks, 2 signal, train, table1), with the paper preset's training settings: its MLP cell is
# one job training both seeds stacked (train.stack_seeds; job_per_seed applies to conv nets),
# long enough to be interrupted twice between checkpoints.
# Both interruptions come ~50 iterations after a (re)start; what is left must outlast the ~3 s
# SLURM needs to preempt: 3000 iterations are ~10 s even on a fast, idle 2-core machine.
ITERATIONS = 3000
REDUCED_CONFIG = {
    "seeds": [0, 1],
    # one training job per gamma (the reinit variant would add a second): the preemption test
    # follows that one job through its retries
    "table1": {"dataset": "mnist", "arch": "mlp-7-tanh", "gammas": [0.01], "reinit": None},
    "train": {"job_per_seed": True, "stack_seeds": True},
    "training": {"mnist": {"iterations": ITERATIONS, "batch_size": 100, "lr_decay_every": 2000,
                           "eval_every": 1000, "checkpoint_every": 50}},
}
RESUMED = re.compile(r"\[train-stacked\] resumed from \S+ at iteration (\d+)/" + str(ITERATIONS))


def copy_checkout(dest: Path) -> Path:
    """A clean copy of the checkout: tracked and untracked-but-not-ignored files (no results/)."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an sdist)
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
            ".git", ".snakemake", "results", "__pycache__", "*.egg-info"))
        return dest
    for rel in filter(None, (f.decode() for f in listing.split(b"\0"))):
        src = REPO / rel
        if src.is_symlink():  # ./slurm -> profiles/slurm: what `--profile slurm` finds
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).symlink_to(os.readlink(src))
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_reduced_quick_preset_through_slurm_survives_time_limit_and_preemption(cluster, tmp_path):
    """Table 1 (reduced) built by SLURM jobs with the real Snakefile, while its training job (both
    seeds stacked, one output folder) is interrupted twice and loses nothing but the steps since
    its last checkpoint, which lies beside the folder Snakemake deletes when the job fails:

    1. time-limit warning: SIGTERM to the job's processes (``scancel --signal=TERM``, what
       ``--signal=TERM@180`` does before the limit): the engine checkpoints and exits 143, the
       job FAILS, and Snakemake's retry (a new SLURM job) resumes from the checkpoint;
    2. preemption: a job in the higher-priority partition takes the node's CPUs, SLURM
       requeues the training job (SIGTERM, checkpoint, same job id, thanks to --requeue), and
       when it runs again it resumes from the newer checkpoint; Snakemake just keeps waiting.
    """
    work = copy_checkout(tmp_path / "repo")
    (work / "reduced.yaml").write_text(yaml.safe_dump(REDUCED_CONFIG))
    # The user's own command, `snakemake --profile slurm` from the repository root: the copy's
    # profiles/slurm (which ./slurm links to) adapted in place to this test cluster.
    adapted_profile(work / "profiles" / "slurm")
    assert (work / "slurm").resolve() == (work / "profiles" / "slurm").resolve()
    run = SnakemakeRun(cluster, [
        "--profile", "slurm", "--configfile", "config/config.yaml", "reduced.yaml",
        "--", "results/quick/tables/table1.csv",
    ], work)

    results = work / "results" / "quick"
    deadline = time.monotonic() + 420
    signalled = preempted = None
    first_resume = None
    while preempted is None and run.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        train = [jobid for rule, jobid, _ in run.submissions() if rule == "train"]
        ckpts = list(results.glob("train/**/*.checkpoint.ckpt"))
        if signalled is None:
            if train and ckpts:
                cluster.run(["scancel", "--signal=TERM", train[0]])
                signalled = (train[0],)
            continue
        logs = list(results.glob("logs/train/**/*.log"))
        resumed = RESUMED.search(logs[0].read_text()) if logs and len(train) == 2 else None
        if resumed is None or not ckpts:
            continue
        # Preempt the retry once it has resumed and written a newer checkpoint.
        if first_resume is None:
            first_resume = (int(resumed.group(1)), ckpts[0].stat().st_mtime_ns)
        elif ckpts[0].stat().st_mtime_ns != first_resume[1]:
            cluster.run(["sbatch", "-p", cluster.urgent_partition, "--mem=100",
                         f"--cpus-per-task={cluster.cpus}", f"--output={tmp_path / 'urgent.log'}",
                         "--wrap=sleep 1"])
            preempted = train[1]
    rc = run.wait(timeout=max(10.0, deadline - time.monotonic()))
    out = run.output
    assert signalled, f"no training checkpoint appeared while the run lasted:\n{out[-6000:]}"
    assert preempted, f"the retried training job was not seen resuming:\n{out[-6000:]}"
    assert rc == 0, out[-8000:]

    # Every job went through sbatch and SLURM ran it, except the workflow's local rules
    # (init, mask, table: milliseconds of work), which the login node's Snakemake ran.
    subs = run.submissions()
    rules = sorted(rule for rule, _, _ in subs)
    assert rules == ["data", "score", "signal", "signal", "train", "train"], out[-6000:]
    for local in ("init", "mask", "table"):
        assert f"localrule {local}:" in out
    states = cluster.job_states()
    for rule, jobid, log in subs:
        expected = "FAILED" if jobid == signalled[0] else "COMPLETED"
        assert states.get(jobid) == expected, (rule, jobid, states)
        assert Path(log).is_file(), log

    # 1: the signalled attempt checkpointed and exited 143; the retry resumed from there.
    first_log = Path(next(log for _, jobid, log in subs if jobid == signalled[0])).read_text()
    assert "exit status 143" in first_log, first_log[-3000:]  # its checkpoint, then SIGTERM's code
    assert first_resume[0] >= 50
    # 2: the preempted job was requeued (same id, one restart) and resumed further on.
    job = cluster.run(["scontrol", "show", "job", preempted]).stdout
    assert re.search(r"\bRestarts=1\b", job), job
    train_log = next(results.glob("logs/train/**/*.log")).read_text()
    resumed = RESUMED.search(train_log)
    assert resumed and int(resumed.group(1)) > first_resume[0], train_log
    assert not list(results.glob("train/**/*.ckpt"))  # removed once the outputs were written
    for seed in (0, 1):
        metrics_file = next(results.glob(f"train/**/seed{seed}/metrics.json"))
        metrics = yaml.safe_load(metrics_file.read_text())
        assert metrics["iterations_run"] == ITERATIONS and metrics["seed"] == seed
        with open(metrics_file.with_name("history.csv")) as f:
            evals = [int(float(r["iteration"])) for r in csv.DictReader(f)]
        assert evals == [1000, 2000, 3000], evals

    # The table: one row (gamma 0.01), finite measured values.
    with open(results / "tables" / "table1.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["gamma"]) == 0.01
    for key in ("jsv_mean_mean", "jsv_cn_mean", "error_mean", "error_paper_protocol_mean"):
        assert math.isfinite(float(rows[0][key])), (key, rows[0])


def test_profile_matches_the_workflow_rules():
    """The profile names rules of another file (workflow/rules/*.smk): every name it sets
    resources for must exist, and every rule that asks for a GPU in the paper preset must get
    its cluster settings (GPU, runtime, partition/model edits) from the profile. A dry run of
    the paper preset through the profile, no cluster needed, named as the README says."""
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm",
         "--configfile", "config/paper.yaml", "--rerun-triggers", "mtime"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$",
                      res.stdout, re.M)
    assert jobs, res.stdout[-3000:]
    resources = {rule: dict(kv.split("=", 1) for kv in r.split(", ")) for rule, r in jobs}
    profile = yaml.safe_load(PROFILE.read_text())["set-resources"]
    assert set(profile) <= set(resources), set(profile) - set(resources)
    gpu_rules = {rule for rule, r in resources.items() if r.get("gpu") == "1"}
    assert {"train", "train_seed", "score", "signal"} <= gpu_rules
    for rule in gpu_rules:
        assert profile.get(rule, {}).get("gpu") == 1, f"{rule} wants a GPU: add it to the profile"
    for rule in ("train", "train_seed", "frankle_dense", "frankle_runs"):
        if rule in resources:
            assert "--signal=TERM@" in resources[rule]["slurm_extra"], (rule, resources[rule])
            assert int(resources[rule]["runtime"]) >= 360
