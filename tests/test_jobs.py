"""spp.jobs: a script job's body runs once, in a child of a warm server keyed by the job's own
interpreter and environment, or in the job's process; its status, signals, resource use, sole
writer lock, and its end when the Snakemake process (or the job process) that owns it is gone.

Each test's scripts look like the files Snakemake runs for a `script:` rule: a preamble that
builds `snakemake`, then the script, whose first statement is `enter(snakemake)`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from spp import jobs

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"

PREAMBLE = """
import sys, types
sys.path.insert(0, {workflow!r})
snakemake = types.SimpleNamespace(output=[{out!r}], log=types.SimpleNamespace(usage={usage!r}),
                                  params={params!r})
from spp.jobs import enter
enter(snakemake)
"""

BODY = """
import json, os, sys, time
warm = "torch" in sys.modules  # imported by the server before the body ran
with open(snakemake.output[0], "w") as f:
    json.dump({"pid": os.getpid(), "ppid": os.getppid(), "warm": warm,
               "cwd": os.getcwd(), "foo": os.environ.get("FOO")}, f)
x = snakemake.params.get("x")
if x == "fail":
    raise ValueError("bad value x='fail': allowed are anything else")
if x == "exit3":
    sys.exit(3)
if x == "wait":
    import signal
    def stop(signum, frame):
        open(snakemake.output[0] + ".stopped", "w").write(signal.Signals(signum).name)
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    time.sleep(120)
"""


@pytest.fixture
def owner():
    """A stand-in for the Snakemake process: jobs and servers end when it is gone."""
    p = subprocess.Popen(["sleep", "600"])
    yield p
    p.kill()
    p.wait()


def script(tmp_path, name, **params):
    out = tmp_path / f"{name}.json"
    path = tmp_path / f"{name}.py"
    usage = str(tmp_path / "usage" / f"{name}.tsv")
    path.write_text(PREAMBLE.format(workflow=str(WORKFLOW), out=str(out), usage=usage,
                                    params=params) + BODY)
    return path, out


def env(tmp_path, owner, warm=True, **extra):
    e = {**os.environ, jobs.WARM: "1" if warm else "0", jobs.OWNER: str(owner.pid),
         "SPP_JOBS_DIR": str(tmp_path / "servers"), **extra}
    e.pop("PYTHONPATH", None)
    return e


def run(tmp_path, owner, name, warm=True, extra=None, **params):
    path, out = script(tmp_path, name, **params)
    r = subprocess.run([sys.executable, str(path)], env=env(tmp_path, owner, warm, **(extra or {})),
                       cwd=tmp_path, capture_output=True, text=True, timeout=180)
    return r, out


def test_warm_jobs_run_in_a_child_of_one_server_that_imported_torch(tmp_path, owner):
    (a, out_a), (b, out_b) = (run(tmp_path, owner, n) for n in ("a", "b"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    got_a, got_b = (json.loads(o.read_text()) for o in (out_a, out_b))
    assert got_a["warm"] and got_b["warm"]
    assert got_a["ppid"] == got_b["ppid"]  # one server forked both
    assert got_a["cwd"] == str(tmp_path)
    row = pd.read_csv(tmp_path / "usage" / "a.tsv", sep="\t")
    assert list(row.columns) == list(jobs.USAGE_COLUMNS) and row["max_rss"].item() > 0


def test_another_environment_gets_another_server_and_its_own_values(tmp_path, owner):
    r1, out1 = run(tmp_path, owner, "a")
    r2, out2 = run(tmp_path, owner, "b", extra={"FOO": "module-loaded"})
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    got1, got2 = (json.loads(o.read_text()) for o in (out1, out2))
    assert got1["ppid"] != got2["ppid"] and got2["foo"] == "module-loaded"


def test_without_warm_start_the_body_runs_in_the_job_process(tmp_path, owner):
    path, out = script(tmp_path, "cold")
    p = subprocess.Popen([sys.executable, str(path)], env=env(tmp_path, owner, warm=False),
                         cwd=tmp_path)
    assert p.wait(timeout=120) == 0
    got = json.loads(out.read_text())
    assert got["pid"] == p.pid and not got["warm"]


@pytest.mark.parametrize("warm", [True, False])
def test_a_failure_keeps_its_message_and_status_and_writes_no_usage(tmp_path, owner, warm):
    r, _ = run(tmp_path, owner, "bad", warm=warm, x="fail")
    assert r.returncode == 1
    assert "ValueError: bad value x='fail': allowed are anything else" in r.stderr
    assert not (tmp_path / "usage" / "bad.tsv").exists()
    r, _ = run(tmp_path, owner, "three", warm=warm, x="exit3")
    assert r.returncode == 3


def wait_for(path: Path, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_to_the_job_process_reach_the_warm_child(tmp_path, owner, sig):
    path, out = script(tmp_path, "wait", x="wait")
    p = subprocess.Popen([sys.executable, str(path)], env=env(tmp_path, owner), cwd=tmp_path)
    assert wait_for(out)
    child = json.loads(out.read_text())["pid"]
    assert child != p.pid
    p.send_signal(sig)
    assert p.wait(timeout=30) == 143
    assert Path(f"{out}.stopped").read_text() == sig.name


@pytest.mark.parametrize("warm", [True, False])
def test_a_job_stops_when_its_snakemake_is_gone(tmp_path, owner, warm):
    path, out = script(tmp_path, "orphan", x="wait")
    p = subprocess.Popen([sys.executable, str(path)], env=env(tmp_path, owner, warm=warm),
                         cwd=tmp_path)
    assert wait_for(out)
    owner.kill()
    owner.wait()
    assert wait_for(Path(f"{out}.stopped"), seconds=10)  # SIGTERM from its watch
    assert p.wait(timeout=30) == 143


def test_a_warm_child_stops_when_its_job_process_is_killed(tmp_path, owner):
    path, out = script(tmp_path, "killed", x="wait")
    p = subprocess.Popen([sys.executable, str(path)], env=env(tmp_path, owner), cwd=tmp_path)
    assert wait_for(out)
    p.kill()
    p.wait()
    assert wait_for(Path(f"{out}.stopped"), seconds=10)


def test_a_second_writer_of_the_same_outputs_is_refused_naming_the_first(tmp_path, owner):
    path, out = script(tmp_path, "cell", x="wait")
    first = subprocess.Popen([sys.executable, str(path)], env=env(tmp_path, owner), cwd=tmp_path)
    assert wait_for(out)
    holder = json.loads(out.read_text())["pid"]
    second = subprocess.run([sys.executable, str(path)], env=env(tmp_path, owner, warm=False),
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert f"cell.json is being made by pid {holder} on " in second.stderr, second.stderr
    assert len([ln for ln in second.stderr.splitlines() if ln.strip()]) <= 3
    first.terminate()
    assert first.wait(timeout=30) == 143
    assert not Path(f"{out}.lock").exists()  # released and removed with the job


def test_the_server_exits_when_its_snakemake_is_gone(tmp_path, owner):
    r, out = run(tmp_path, owner, "a")
    assert r.returncode == 0, r.stderr
    server = json.loads(out.read_text())["ppid"]
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while jobs.alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not jobs.alive(server)
    assert not list((tmp_path / "servers").glob("*.sock"))


def test_a_jobs_log_names_its_pid_on_the_first_line(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(f"[12:00:00] rule train wildcards {{}} {jobs.pid_note()}\nmore\n")
    assert jobs.logged_pid(log) == os.getpid()
    assert jobs.logged_pid(tmp_path / "missing.log") is None
