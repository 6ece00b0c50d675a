"""Fault injection: what the workflow does when its jobs are killed, its files damaged, its disk
full or its config malformed. Reports figures (how many times, what held), not just pass/fail.

    python benchmarks/faults.py                 # the full run; writes docs/reliability.md
    python benchmarks/faults.py --quick         # fewer kills, one damage kind, no report
                                                # (CI: tests/test_faults.py, smaller still)

Every fault is injected into real `snakemake` runs of this checkout's Snakefile, in a scratch
folder: a training cell killed (SIGKILL) at seeded random moments and rerun; the whole Snakemake
process tree killed, unlocked and rerun; each stage's output truncated or overwritten with garbage;
a disk that fills during a write (a small tmpfs, or a file-size limit where mounting is not
allowed); malformed configs. Each kind's figures are one row of the report's tables.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
from spp.jobs import alive, logged_pid  # noqa: E402

E2E_CONFIG = REPO / ".test" / "config" / "config.yaml"
MARK = "SPP_FAULTS_RUN"  # in the environment of every process a run starts (to find leftovers)
# Snakemake's own lines around a config error (not part of the workflow's message)
BANNER = re.compile(r"^(Using workflow specific profile|Config file .* is extended by|\s*$)")


# --- running Snakemake -------------------------------------------------------------------------

def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]


_JOBS_DIR = tempfile.mkdtemp(prefix="spp-faults-jobs-")  # this run's warm servers, no one else's
atexit.register(shutil.rmtree, _JOBS_DIR, ignore_errors=True)  # idle servers exit by themselves


def environment(mark: str) -> dict:
    return {**os.environ, MARK: mark, "SPP_JOBS_DIR": _JOBS_DIR}


def snakemake(workdir: Path, *args: str, mark: str = "", timeout: int = 1800,
              preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run(command("--directory", str(workdir), *args), cwd=workdir, text=True,
                          capture_output=True, timeout=timeout, env=environment(mark),
                          preexec_fn=preexec)


def start(workdir: Path, *args: str, mark: str) -> subprocess.Popen:
    """A Snakemake run in its own process group (killable as a tree)."""
    return subprocess.Popen(command("--directory", str(workdir), *args), cwd=workdir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=environment(mark), start_new_session=True)


def marked(mark: str) -> list[int]:
    """PIDs of live processes started by the run tagged `mark` (whatever their parent now)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if f"{MARK}={mark}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                if alive(int(proc.name)):
                    found.append(int(proc.name))
    return found


def seconds_until_gone(mark: str, limit: float) -> float | None:
    """Seconds until no process of the run is left, or None if some are after `limit`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if not marked(mark):
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def write_config(path: Path, edit=None, base: Path | None = None) -> Path:
    cfg = yaml.safe_load((base or REPO / "config" / "config.yaml").read_text())
    if edit:
        edit(cfg)
    path.write_text(yaml.safe_dump(cfg))
    return path


def snapshot(folder: Path, pattern: str) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.glob(pattern))
            if f.is_file()}


# --- 1. SIGKILL of a training job ---------------------------------------------------------------

ITERATIONS = 3000
RESUMED = re.compile(r"resumed from \S+ at iteration (\d+)/")


def one_cell(cfg: dict) -> None:
    """Table 1's MLP, one gamma, two seeds stacked in one job, checkpointing every 20 steps."""
    cfg.update(preset="faults", seeds=[0, 1], scoring={"batch_size": 100, "max_examples": 200},
               train={"job_per_seed": True, "stack_seeds": True})
    cfg["table1"].update(gammas=[0.01], reinit=None)
    cfg["training"]["mnist"] = {"iterations": ITERATIONS, "batch_size": 50,
                                "lr_decay_every": 2000, "eval_every": 1000, "checkpoint_every": 20}


@dataclass
class Cell:
    """The one training cell of `one_cell` in `workdir`: its folder, checkpoint and log."""

    workdir: Path
    config: Path = field(init=False)

    def __post_init__(self):
        from snakemake.utils import validate
        from spp.tables import experiments as X

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = write_config(self.workdir / "faults.yaml", one_cell)
        cfg = yaml.safe_load(self.config.read_text())
        validate(cfg, str(REPO / "config" / "config.schema.yaml"))
        (row,) = X.expand(cfg)["table1"]
        self.rel = row["runs"]["main"].stage_dir("results/faults", "train")
        self.folder = self.workdir / self.rel
        self.ckpt = self.workdir / f"{self.rel}.checkpoint.ckpt"
        log = self.workdir / self.rel.replace("results/faults/", "results/faults/logs/", 1)
        self.log = log.with_name(log.name + ".log")
        self.args = ("--cores", "1", "--configfile", str(self.config), "--", self.rel)

    def outputs(self) -> dict[str, bytes]:
        return snapshot(self.folder, "seed*/*")

    def fresh(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.ckpt.unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)

    def training_pid(self, proc: subprocess.Popen, seconds: float = 600) -> int | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            if (pid := logged_pid(self.log)) is not None:
                return pid
            time.sleep(0.01)
        return None


def kill_training(root: Path, n: int, rng: random.Random) -> dict:
    """N seeded kills of the training job, each at a uniform random moment of its lifetime,
    each followed by a rerun: resumed, retrained from the start, bit-identical to a clean run."""
    cell = Cell(root / "kill-training")
    # a clean run (upstream jobs too), then the training job alone, timed
    r = snakemake(cell.workdir, *cell.args)
    if r.returncode:
        raise RuntimeError(f"clean run failed:\n{(r.stdout + r.stderr)[-3000:]}")
    cell.fresh()
    mark = uuid.uuid4().hex
    proc = start(cell.workdir, *cell.args, mark=mark)
    pid = cell.training_pid(proc)
    t0 = time.monotonic()
    while pid is not None and alive(pid):  # the job's life, not Snakemake's wrap-up
        time.sleep(0.01)
    lifetime = time.monotonic() - t0
    proc.communicate()
    clean = cell.outputs()
    trials = []
    for i in range(n):
        cell.fresh()
        at = rng.uniform(0.02, 0.98) * lifetime
        mark = f"{uuid.uuid4().hex}"
        proc = start(cell.workdir, *cell.args, mark=mark)
        pid = cell.training_pid(proc)
        time.sleep(at)
        in_flight = pid is not None and alive(pid)
        if in_flight:
            os.kill(pid, signal.SIGKILL)
        out = proc.communicate(timeout=600)[0]
        had_ckpt = cell.ckpt.exists()
        left = seconds_until_gone(mark, 30)
        rerun = snakemake(cell.workdir, *cell.args)
        log = cell.log.read_text(errors="replace") if cell.log.exists() else ""
        resumed = RESUMED.search(log)
        trials.append({
            "trial": i, "kill_at_s": round(at, 3), "killed_in_flight": in_flight,
            "first_run_failed": proc.returncode != 0, "checkpoint_left": had_ckpt,
            "resumed_at": int(resumed.group(1)) if resumed else None,
            "rerun_ok": rerun.returncode == 0, "identical": cell.outputs() == clean,
            "stopped_within_30s": left is not None,
            "error_tail": "" if rerun.returncode == 0 else (rerun.stdout + rerun.stderr)[-800:],
            "first_run_tail": out[-300:] if not in_flight else "",
        })
    killed = [t for t in trials if t["killed_in_flight"]]
    return {
        "kind": "SIGKILL of a training job", "n": n, "lifetime_s": round(lifetime, 2),
        "killed_in_flight": len(killed),
        "resumed": sum(t["resumed_at"] is not None for t in killed),
        "restarted": sum(t["resumed_at"] is None for t in killed),
        "rerun_ok": sum(t["rerun_ok"] for t in trials),
        "identical": sum(t["identical"] for t in trials),
        "no_process_left": sum(t["stopped_within_30s"] for t in trials),
        "held": all(t["rerun_ok"] and t["identical"] and t["stopped_within_30s"]
                    for t in trials) and bool(killed),
        "trials": trials,
    }


# --- 2. SIGKILL of the whole Snakemake tree ------------------------------------------------------

def e2e_args() -> tuple[str, ...]:
    return ("--cores", "2", "--configfile", str(E2E_CONFIG))


def tables(workdir: Path) -> dict[str, bytes]:
    return snapshot(workdir / "results" / "e2e" / "tables", "*.csv")


def clean_e2e(root: Path) -> tuple[Path, float]:
    """The reduced quick preset (every table, every stage) run once, uninterrupted: its folder and
    its wall time."""
    workdir = root / "e2e-clean"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    r = snakemake(workdir, *e2e_args())
    if r.returncode:
        raise RuntimeError(f"clean e2e run failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return workdir, time.monotonic() - t0


def kill_tree(root: Path, clean: Path, wall: float, n: int, rng: random.Random) -> dict:
    """SIGKILL to Snakemake and every process of its group at a random moment of a fresh run;
    then `--unlock` and a rerun: every table byte-identical to the clean run's."""
    want = tables(clean)
    trials = []
    for i in range(n):
        workdir = root / f"kill-tree-{i}"
        workdir.mkdir(parents=True, exist_ok=True)
        at = rng.uniform(0.05, 0.95) * wall
        mark = uuid.uuid4().hex
        proc = start(workdir, *e2e_args(), mark=mark)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=at)
        finished_first = proc.poll() is not None
        if not finished_first:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        left = seconds_until_gone(mark, 30)
        snakemake(workdir, "--unlock", *e2e_args())
        rerun = snakemake(workdir, *e2e_args())
        got = tables(workdir)
        trials.append({
            "trial": i, "kill_at_s": round(at, 2), "killed": not finished_first,
            "seconds_until_no_process": None if left is None else round(left, 2),
            "rerun_ok": rerun.returncode == 0, "identical": got == want,
            "differing": sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k)),
            "error_tail": "" if rerun.returncode == 0 else (rerun.stdout + rerun.stderr)[-800:],
        })
        shutil.rmtree(workdir, ignore_errors=True)
    stops = [t["seconds_until_no_process"] for t in trials if t["killed"]]
    return {
        "kind": "SIGKILL of the Snakemake process tree", "n": n, "clean_wall_s": round(wall, 1),
        "killed": sum(t["killed"] for t in trials),
        "no_process_left": sum(s is not None for s in stops),
        "slowest_stop_s": max((s for s in stops if s is not None), default=None),
        "rerun_ok": sum(t["rerun_ok"] for t in trials),
        "identical": sum(t["identical"] for t in trials),
        "held": all(t["rerun_ok"] and t["identical"] for t in trials)
        and all(s is not None for s in stops),
        "trials": trials,
    }


# --- 3. damaged files, stage by stage ------------------------------------------------------------

# Each stage, and the rule whose jobs read it. A stage's output is a folder, whose time stamp a
# file damaged inside it does not change: Snakemake sees nothing to redo, so the reading jobs are
# forced to run (as a rerun for any other reason would run them).
READER = {"data": "score", "init": "score", "score": "mask", "mask": "signal", "repair": "signal",
          "signal": "table", "train": "table", "checkpoint": None}
STAGES = tuple(READER)
# Snakemake's own lines naming a job's files: a file named only there was not named by the job
SNAKEMAKE_LINE = re.compile(r"\s*(input|output|log|reason|Removing output files of failed job"
                            r"|Logfile .* not found)\b")


def stage_file(results: Path, stage: str) -> Path:
    """One output of `stage` in a finished run that a later job reads (for `checkpoint`: where
    Table 1's first training cell would find its checkpoint)."""
    if stage == "data":
        return results / "data" / "mnist.pt"
    if stage == "train":
        return sorted(results.glob("train/mnist/**/seed0/metrics.json"))[0]
    if stage == "checkpoint":  # Table 1's MLP cell: its seeds stacked, one checkpoint
        cell = sorted(results.glob("train/mnist/mlp-7-tanh_*/**/none/mnist/seed0"))[0].parent
        return Path(f"{cell}.checkpoint.ckpt")
    suffix = "json" if stage == "signal" else "pt"
    return sorted((results / stage).glob(f"**/*.{suffix}"))[0]


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # garbage
        path.write_bytes(random.Random(0).randbytes(max(path.stat().st_size, 4096)))


def damaged_files(root: Path, clean: Path, kinds: tuple[str, ...],
                  stages=STAGES) -> dict:
    """Each stage's file damaged in a copy of the clean run, then the workflow rerun with the
    jobs reading it forced (`READER`): the one reading it fails naming it, and no table is
    written from it (each table is either the clean run's or absent, its last good copy kept)."""
    want = tables(clean)
    trials = []
    for stage in stages:
        for how in kinds:
            workdir = root / f"damage-{stage}-{how}"
            shutil.copytree(clean, workdir, symlinks=True)
            results = workdir / "results" / "e2e"
            target = stage_file(results, stage)
            rel = str(target.relative_to(workdir))
            if stage == "checkpoint":  # the checkpoint of a cell that must train again
                cell = target.with_name(target.name.removesuffix(".checkpoint.ckpt"))
                shutil.rmtree(cell)
                target.write_bytes(b"PK\x03\x04" + bytes(60))  # a zip cut short, or garbage
                # Snakemake remakes a missing folder only when asked for it: the tables that read
                # it are newer than what it was made from (as for a temp() file)
                force = ("--", "all", str(cell.relative_to(workdir)))
            else:
                force = ("--forcerun", READER[stage])
            damage(target, how)
            r = snakemake(workdir, *e2e_args(), *force)
            out = r.stdout + r.stderr
            got = tables(workdir)
            last_good = snapshot(results / "tables" / "last-good", "*.csv")
            message = next((ln.strip() for ln in out.splitlines()
                            if rel in ln and not SNAKEMAKE_LINE.match(ln)), "")
            trials.append({
                "stage": stage, "damage": how, "file": rel, "failed": r.returncode != 0,
                "named": bool(message),
                "tables_clean_or_absent": all(got[k] == want[k] for k in got),
                "last_good_kept": all(last_good.get(k) == want[k] for k in want),
                "message": message[:300],
            })
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "kind": "a truncated or garbage file at each stage", "n": len(trials),
        "failed": sum(t["failed"] for t in trials), "named": sum(t["named"] for t in trials),
        "nothing_averaged_in": sum(t["tables_clean_or_absent"] and t["last_good_kept"]
                                   for t in trials),
        "held": all(t["failed"] and t["named"] and t["tables_clean_or_absent"]
                    and t["last_good_kept"] for t in trials),
        "trials": trials,
    }


# --- 4. a full disk during a write --------------------------------------------------------------

@contextlib.contextmanager
def small_disk(folder: Path, size_mb: int):
    """A tmpfs of `size_mb` at `folder` (None where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    try:
        yield r.returncode == 0
    finally:
        if r.returncode == 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def full_disk(root: Path) -> dict:
    """The data job (a few hundred KB of downloads, then a 5 MB tensor file) on a disk with room
    for Snakemake's bookkeeping but not for all of it: full during the copy of the downloads
    (1 MiB) and during the tensor write (3 MiB). Each time the job fails with a message naming
    the file and the cause, no partial or temporary file is left, and once there is room the
    same command completes."""
    target = "results/quick/data/mnist.pt"
    trials = []
    for size_mb in (1, 3):
        workdir = root / f"full-disk-{size_mb}"
        with small_disk(workdir, size_mb) as mounted:
            preexec = None
            if not mounted:  # the same failure by a file-size limit (EFBIG for ENOSPC)
                limit = size_mb << 20
                preexec = lambda n=limit: resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))  # noqa: E731
            r = snakemake(workdir, "--cores", "1", "--", target, preexec=preexec)
            out = r.stdout + r.stderr
            results = workdir / "results"
            partial = [str(p.relative_to(workdir)) for p in results.rglob("*")
                       if p.is_file() and (".tmp" in p.name or p.suffix == ".part")]
            message = next((ln.strip() for ln in out.splitlines()
                            if re.search(r"no space left|file too large|size limit", ln, re.I)
                            and "results/quick/data" in ln), "")
            torn = (workdir / target).exists()
            if mounted:
                subprocess.run(["mount", "-o", "remount,size=256m", str(workdir)],
                               capture_output=True)
            again = snakemake(workdir, "--cores", "1", "--", target)
            completed = again.returncode == 0 and (workdir / target).stat().st_size > (1 << 20)
            trials.append({
                "mechanism": f"tmpfs of {size_mb} MiB" if mounted
                else f"RLIMIT_FSIZE of {size_mb} MiB",
                "failed": r.returncode != 0, "torn_file": torn, "partial_files_left": partial,
                "message": message[:400], "rerun_with_room_ok": completed,
                "held": r.returncode != 0 and not torn and not partial and bool(message)
                and completed,
            })
    return {
        "kind": "a full disk during a write", "n": len(trials),
        "mechanism": ", ".join(t["mechanism"] for t in trials),
        "failed": sum(t["failed"] for t in trials),
        "torn_file": sum(t["torn_file"] for t in trials),
        "partial_files_left": sum(len(t["partial_files_left"]) for t in trials),
        "named": sum(bool(t["message"]) for t in trials),
        "rerun_with_room_ok": sum(t["rerun_with_room_ok"] for t in trials),
        "held": all(t["held"] for t in trials), "trials": trials,
    }


# --- 5. malformed configs ------------------------------------------------------------------------

MALFORMED: list[tuple[str, str, object]] = [
    # (what, key path, value): each set on the quick preset's config
    ("type", "seeds", "abc"),
    ("range", "seeds", [-1]),
    ("range", "training.mnist.lr", -0.1),
    ("type", "training.mnist.iterations", 1.5),
    ("unknown key", "bogus_key", 1),
    ("unknown key", "training.mnist.lrr", 0.1),
    ("type", "table1.gammas", "x"),
    ("range", "scoring.batch_size", 0),
    ("type", "train.stack_seeds", "yes"),
    ("name", "table1.arch", "nope"),
    ("name", "table2.columns.0.dataset", "imagenet"),
    ("range", "figure3.base.width", -1),
    ("range", "table5.sparsity", 1.5),
    ("path", "preset", ".."),
    ("path", "preset", "/etc"),
    ("path", "preset", "~"),
    ("path", "preset", "a\0b"),
    ("path", "preset", "p" * 300),
    ("path", "data.mirror", "/no/such/folder"),
    ("path", "frankle.networks.0.activation", "../x"),
]


def set_key(cfg: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def malformed_configs(root: Path) -> dict:
    """Each config refused before any job (no results folder made) in at most 3 lines of the
    workflow's own (Snakemake's banner aside), naming the key."""
    trials = []
    for i, (what, key, value) in enumerate(MALFORMED):
        workdir = root / f"config-{i}"
        workdir.mkdir(parents=True)
        cfg = write_config(workdir / "bad.yaml", lambda c, k=key, v=value: set_key(c, k, v))
        r = snakemake(workdir, "--cores", "1", "--configfile", str(cfg), timeout=300)
        lines = [ln for ln in (r.stdout + r.stderr).splitlines() if not BANNER.match(ln)]
        leaf = key.split(".")[-1]
        trials.append({
            "what": what, "key": key, "value": repr(value)[:40], "refused": r.returncode != 0,
            "no_job_ran": not (workdir / "results").exists(), "lines": len(lines),
            "names_key": any(leaf in ln for ln in lines), "message": " / ".join(lines)[:300],
        })
        shutil.rmtree(workdir, ignore_errors=True)
    ok = [t["refused"] and t["no_job_ran"] and t["lines"] <= 3 and t["names_key"] for t in trials]
    return {
        "kind": "malformed configs", "n": len(trials), "refused": sum(t["refused"] for t in trials),
        "before_any_job": sum(t["no_job_ran"] for t in trials),
        "at_most_3_lines": sum(t["lines"] <= 3 for t in trials),
        "naming_the_key": sum(t["names_key"] for t in trials), "held": all(ok), "trials": trials,
    }


# --- the report ----------------------------------------------------------------------------------

def run_all(root: Path, kills: int, tree_kills: int, damage_kinds: tuple[str, ...],
            seed: int) -> list[dict]:
    rng = random.Random(seed)
    results = [malformed_configs(root), full_disk(root), kill_training(root, kills, rng)]
    clean, wall = clean_e2e(root)
    results.append(damaged_files(root, clean, damage_kinds))
    results.append(kill_tree(root, clean, wall, tree_kills, rng))
    return results


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                       text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def markdown(results: list[dict], cmd: str, seconds: float) -> str:
    by = {r["kind"]: r for r in results}
    k, t = by["SIGKILL of a training job"], by["SIGKILL of the Snakemake process tree"]
    d, f, c = (by["a truncated or garbage file at each stage"], by["a full disk during a write"],
               by["malformed configs"])
    yes = {True: "yes", False: "**no**"}
    lines = [
        "# Reliability: faults injected, and what held",
        "",
        "Written by `benchmarks/faults.py` (do not edit by hand); rerun it to refresh.",
        "",
        f"- command: `{cmd}`",
        f"- commit: {commit()}; {time.strftime('%Y-%m-%d')}; {seconds / 60:.1f} min on "
        f"{os.cpu_count()} cores",
        "",
        "| fault | injected | what held | all held |",
        "|---|---|---|---|",
        f"| SIGKILL of a training job (2 stacked seeds, {ITERATIONS} steps, checkpoint every 20) "
        f"at a seeded uniform moment of its {k['lifetime_s']} s life, then a rerun | {k['n']} "
        f"| {k['killed_in_flight']} killed in flight: {k['resumed']} resumed from a checkpoint, "
        f"{k['restarted']} restarted (killed before the first one); {k['rerun_ok']} reruns "
        f"completed; {k['identical']} of {k['n']} outputs bit-identical to an uninterrupted "
        f"run; {k['no_process_left']} of {k['n']} left no process | {yes[k['held']]} |",
        f"| SIGKILL of Snakemake and its process group at a random moment of the reduced quick "
        f"preset ({t['clean_wall_s']} s clean), then `--unlock` and a rerun | {t['n']} "
        f"| {t['killed']} killed mid-run; no process left within 30 s in {t['no_process_left']} "
        f"(slowest {t['slowest_stop_s']} s); {t['rerun_ok']} reruns completed; "
        f"{t['identical']} of {t['n']} with every table CSV byte-identical to the clean run's "
        f"| {yes[t['held']]} |",
        f"| a file truncated or overwritten with garbage at each stage ({', '.join(STAGES)}) "
        f"of a finished run, then the whole workflow rerun | {d['n']} | {d['failed']} failed; "
        f"{d['named']} named the file; {d['nothing_averaged_in']} wrote no table from it (the "
        f"clean run's or none, last good copy kept) | {yes[d['held']]} |",
        f"| a full disk while the data job writes ({f['mechanism']}) | {f['n']} "
        f"| {f['failed']} failed, {f['named']} with a message naming the file and the cause; "
        f"torn files left: {f['torn_file']}; partial or temporary files left: "
        f"{f['partial_files_left']}; with room, the same command completed: "
        f"{f['rerun_with_room_ok']} | {yes[f['held']]} |",
        f"| a malformed config (types, ranges, unknown keys, names, path tricks) | {c['n']} "
        f"| {c['refused']} refused, {c['before_any_job']} before any job, "
        f"{c['at_most_3_lines']} in at most 3 lines, {c['naming_the_key']} naming the key "
        f"| {yes[c['held']]} |",
        "",
        "## Details",
        "",
        "Damaged files (the job's message naming the file):",
        "",
        "| stage | damage | named | message |",
        "|---|---|---|---|",
        *(f"| {x['stage']} | {x['damage']} | {yes[x['named']]} | "
          f"{x['message'].replace('|', '/')} |" for x in d["trials"]),
        "",
        *(f"Full disk ({x['mechanism']}): {x['message'].replace('|', '/')}" + "  "
          for x in f["trials"]),
        "",
        "Malformed configs (the workflow's whole message):",
        "",
        "| what | key | value | lines | message |",
        "|---|---|---|---|---|",
        *(f"| {x['what']} | `{x['key']}` | `{x['value']}` | {x['lines']} | "
          f"{x['message'].replace('|', '/')} |" for x in c["trials"]),
        "",
        "Training-job kills (moment, checkpoint step resumed from):",
        "",
        "| trial | kill at (s) | resumed at | identical |",
        "|---|---|---|---|",
        *(f"| {x['trial']} | {x['kill_at_s']} | {_or(x['resumed_at'], 'start')} "
          f"| {yes[x['identical']]} |" for x in k["trials"]),
        "",
        "Not injected here: a missing `--configfile`, or one that is not YAML, stops Snakemake "
        "before this workflow's Snakefile runs (Snakemake prints a traceback, or names no line); "
        "`python workflow/scripts/check_config.py FILE` names the file and the line.",
        "",
    ]
    return "\n".join(lines)


def _or(value, default):
    return default if value is None else value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI's reduced run (fewer kills)")
    ap.add_argument("--kills", type=int, help="training-job kills (default 20; quick 3)")
    ap.add_argument("--tree-kills", type=int, help="Snakemake-tree kills (default 5; quick 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="markdown report (default docs/reliability.md, "
                    "not written by --quick)")
    ap.add_argument("--json", type=Path, help="every trial's record, as JSON")
    args = ap.parse_args(argv)
    kills = args.kills if args.kills is not None else (3 if args.quick else 20)
    tree_kills = args.tree_kills if args.tree_kills is not None else (1 if args.quick else 5)
    kinds = ("garbage",) if args.quick else ("truncated", "garbage")
    out = args.out or (None if args.quick else REPO / "docs" / "reliability.md")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spp-faults-") as tmp:
        results = run_all(Path(tmp), kills, tree_kills, kinds, args.seed)
    cmd = " ".join(["python benchmarks/faults.py", *(sys.argv[1:] if argv is None else argv)])
    for r in results:
        figures = {k: v for k, v in r.items() if k != "trials"}
        print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if out:
        out.write_text(markdown(results, cmd, time.monotonic() - t0))
        print(f"wrote {out}")
    return 0 if all(r["held"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
