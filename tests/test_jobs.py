"""spp.jobs: a job's script runs in a process of its own, forked from a server that has already
imported torch; it sees the `snakemake` object, its failure is reported with its own message,
and its resource use is written where a Snakemake benchmark file would be."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch
from spp import jobs

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"

SCRIPT = """
import json, os, sys
import torch
torch.set_num_threads(1)
out = snakemake.output[0]
with open(out, "w") as f:
    json.dump({"pid": os.getpid(), "x": snakemake.params["x"],
               "torch_threads": torch.get_num_threads()}, f)
if snakemake.params["x"] == "fail":
    raise ValueError("bad value x='fail': allowed are anything else")
"""


def job(tmp_path, x):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{x}.json"
    sm = types.SimpleNamespace(output=[str(out)], params={"x": x}, log=[str(tmp_path / "x.log")])
    return script, sm, out


def test_a_job_runs_in_its_own_process_with_its_own_torch_threads(tmp_path):
    threads = torch.get_num_threads()
    script, sm, out = job(tmp_path, "a")
    usage = tmp_path / "bench" / "a.tsv"
    jobs.run(script, sm, usage=usage)
    got = json.loads(out.read_text())
    assert got["x"] == "a" and got["pid"] != os.getpid() and got["torch_threads"] == 1
    assert torch.get_num_threads() == threads  # the job's setting stayed in the job
    row = pd.read_csv(usage, sep="\t")
    assert list(row.columns) == list(jobs.USAGE_COLUMNS) and len(row) == 1
    assert row["s"].item() >= 0 and row["max_rss"].item() > 0 and row["cpu_time"].item() >= 0


PARENT = """
import json, sys, types
sys.path.insert(0, sys.argv[1])  # as the Snakefile does; no PYTHONPATH
print("parent's main ran")
from spp import jobs
if __name__ == "__main__":
    for out in sys.argv[3:]:
        jobs.run(sys.argv[2], types.SimpleNamespace(output=[out], log=[]))
"""

PROBE = """
import json, os, resource, sys
r = resource.getrusage(resource.RUSAGE_SELF)
json.dump({"pid": os.getpid(), "cpu_before_script": r.ru_utime + r.ru_stime,
           "preloaded": sorted(m for m in ("torch", "spp.train.training", "pandas", "snakemake.io")
                               if m in sys.modules)}, open(snakemake.output[0], "w"))
"""


def test_jobs_are_forked_from_a_server_that_imported_torch_and_spp_once(tmp_path):
    """Run from a main script, as Snakemake is, with the library on sys.path but not on
    PYTHONPATH: the server still preloads it, and no job re-runs the parent's main script."""
    (tmp_path / "parent.py").write_text(PARENT)
    (tmp_path / "probe.py").write_text(PROBE)
    outs = [tmp_path / f"{k}.json" for k in range(3)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(tmp_path / "parent.py"), str(WORKFLOW),
                        str(tmp_path / "probe.py"), *map(str, outs)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("parent's main ran") == 1, r.stdout
    got = [json.loads(o.read_text()) for o in outs]
    assert len({g["pid"] for g in got}) == 3  # a process per job
    for g in got:
        assert g["preloaded"] == ["pandas", "snakemake.io", "spp.train.training", "torch"]
        assert g["cpu_before_script"] < 1.0, g  # a torch import alone costs seconds


def test_a_failing_job_raises_with_its_own_message_and_writes_no_usage(tmp_path):
    script, sm, out = job(tmp_path, "fail")
    usage = tmp_path / "fail.tsv"
    with pytest.raises(RuntimeError, match=r"job\.py failed with exit status 1: ValueError: "
                                           r"bad value x='fail'.*x\.log"):
        jobs.run(script, sm, usage=usage)
    assert out.is_file() and not usage.exists()


def test_a_job_killed_by_a_signal_is_reported(tmp_path):
    script = tmp_path / "die.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    with pytest.raises(RuntimeError, match=r"die\.py failed with exit status -9"):
        jobs.run(script, types.SimpleNamespace(log=[]))


def test_sys_exit_zero_is_a_success_and_a_nonzero_exit_a_failure(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import sys\nsys.exit(snakemake.params['code'])\n")
    usage = tmp_path / "exits.tsv"
    jobs.run(script, types.SimpleNamespace(params={"code": 0}, log=[]), usage=usage)
    assert usage.is_file()
    with pytest.raises(RuntimeError, match=r"exits\.py failed with exit status 143"):
        jobs.run(script, types.SimpleNamespace(params={"code": 143}, log=[]))


def test_a_signal_to_the_whole_job_step_keeps_the_jobs_own_exit_status(tmp_path):
    """SLURM's time-limit warning (--signal=TERM) reaches every process of the job step, the job
    server too: the job's own status (143 after checkpointing) is still what is reported, and
    the next job gets a new server."""
    script = tmp_path / "term.py"
    script.write_text("import os, signal, sys\nos.kill(os.getppid(), signal.SIGTERM)\n"
                      "sys.exit(143)\n")
    with pytest.raises(RuntimeError, match=r"term\.py failed with exit status 143"):
        jobs.run(script, types.SimpleNamespace(log=[]))
    s, sm, out = job(tmp_path, "after")
    jobs.run(s, sm)
    assert json.loads(out.read_text())["x"] == "after"


def test_a_jobs_log_names_its_pid_on_the_first_line(tmp_path):
    log = tmp_path / "job.log"
    assert jobs.logged_pid(log) is None  # not written yet
    log.write_text(f"[12:00:00] rule train wildcards {{}} {jobs.pid_note()}\n[12:00:01] later\n")
    assert jobs.logged_pid(log) == os.getpid()
