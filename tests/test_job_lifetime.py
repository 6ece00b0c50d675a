"""No job outlives the Snakemake that started it, no cell has two writers, and Ctrl-C
checkpoints: each on a real `snakemake` run of one stacked training cell (test_workflow's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from test_workflow import REPO, RESUME_ITERATIONS, one_stacked_cell, snakemake, write_config

sys.path.insert(0, str(REPO / "workflow"))
from spp.jobs import alive, logged_pid  # noqa: E402
from spp.tables import experiments as X  # noqa: E402

pytestmark = pytest.mark.slow


class Cell:
    """The training cell of `one_stacked_cell`: its folder, checkpoint and log in `tmp_path`."""

    def __init__(self, tmp_path: Path, iterations: int = RESUME_ITERATIONS):
        def edit(cfg):
            one_stacked_cell(cfg)
            cfg["training"]["mnist"]["iterations"] = iterations

        self.tmp = tmp_path
        self.config = write_config(tmp_path, edit)
        cfg = yaml.safe_load(self.config.read_text())
        validate(cfg, str(REPO / "config" / "config.schema.yaml"))  # its defaults filled in
        (row,) = X.expand(cfg)["table1"]
        self.rel = row["runs"]["main"].stage_dir("results/resume", "train")
        self.ckpt = tmp_path / f"{self.rel}.checkpoint.ckpt"
        log = tmp_path / self.rel.replace("results/resume/", "results/resume/logs/", 1)
        self.log = log.with_name(log.name + ".log")
        self.args = ["--cores", "1", "--configfile", str(self.config), "--directory",
                     str(tmp_path), self.rel]

    def start(self) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               *self.args]
        return subprocess.Popen(cmd, cwd=self.tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def training_pid(self, proc: subprocess.Popen, seconds: float = 300) -> int:
        """The training job's PID once it has written its first checkpoint."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            if self.ckpt.exists() and (pid := logged_pid(self.log)) is not None:
                return pid
            time.sleep(0.05)
        out = proc.stdout.read() if proc.poll() is not None else ""
        raise AssertionError(f"no training job with a checkpoint:\n{out[-4000:]}")


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_sigkill_of_snakemake_stops_its_training_job_which_checkpoints(tmp_path):
    cell = Cell(tmp_path)
    proc = cell.start()
    pid = cell.training_pid(proc)
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake only: its jobs are left to notice
    proc.wait()
    try:
        assert gone_within(pid, 15), "the training job outlived its Snakemake"
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if alive(pid) else None
    assert "SIGTERM: checkpoint written" in cell.log.read_text()
    r = snakemake("--unlock", *cell.args)
    assert r.returncode == 0, r.stderr[-3000:]
    r = snakemake(*cell.args)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "resumed from" in cell.log.read_text()


def test_a_second_snakemake_after_unlock_is_refused_per_cell(tmp_path):
    cell = Cell(tmp_path, iterations=10**6)  # still training when the second one comes
    first = cell.start()
    try:
        pid = cell.training_pid(first)
        assert snakemake("--unlock", *cell.args).returncode == 0
        second = snakemake(*cell.args)
        out = second.stdout + second.stderr
        assert second.returncode != 0
        assert f"is being made by pid {pid} on " in out, out[-4000:]
        assert alive(pid)  # the first one trains on
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=120)


def test_ctrl_c_checkpoints_like_sigterm(tmp_path):
    cell = Cell(tmp_path)
    proc = cell.start()
    pid = cell.training_pid(proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends its foreground group
    out = proc.communicate(timeout=120)[0]
    assert gone_within(pid, 15)
    log = cell.log.read_text()
    assert "SIGINT: checkpoint written" in log, log[-3000:] + out[-3000:]
    assert cell.ckpt.is_file()
    r = snakemake(*cell.args)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert f"/{RESUME_ITERATIONS}" in cell.log.read_text()
