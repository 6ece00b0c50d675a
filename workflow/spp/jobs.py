"""How the workflow runs a job's script: in a process of its own, forked from a warm one.

A fresh Python process spends seconds of CPU importing torch (4-5 s on the slow 2-core machine of
2026-12-02), more than most jobs of the quick preset compute: its ~240 script jobs spent about a
quarter of the preset's CPU time on start-up. So every job is forked from one server process
that imported torch and this library once (`multiprocessing`'s forkserver, started by the first
job of a Snakemake process). Each job is still a process of its own, as a `script:` job is: its
own thread count, GIL, PID (the GPU claim of `pick_device`), stdout, and a crash ends only it.

The job's resource use (wall time, CPU time, peak RSS) is written by the job itself, because
Snakemake's `benchmark:` of a `run:` job measures the whole Snakemake process tree.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pkgutil
import re
import resource
import runpy
import sys
import threading
import time
import types
from pathlib import Path

# Imported once by the server: the library (torch with it), what the scripts import besides, the
# module of the input/output/params objects a job unpickles, and torch._dynamo, which the first
# optimizer a process builds imports (2.5 s of every training job, py-spy).
PRELOAD_EXTRA = ("pandas", "matplotlib", "snakemake.io", "torch._dynamo")
USAGE_COLUMNS = ("s", "h:m:s", "max_rss", "cpu_time")  # names as in Snakemake's benchmark files

_context = None
_start_lock = threading.Lock()


def _library_modules() -> list[str]:
    import spp

    return ["spp"] + [m.name for m in pkgutil.walk_packages(spp.__path__, "spp.")]


def _forkserver():
    global _context
    if _context is None:
        # The server starts as `python -c ...` and (CPython 3.11) ignores the sys.path it is
        # handed, so it finds this library through PYTHONPATH, or silently preloads nothing.
        library = str(Path(__file__).resolve().parents[1])
        rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join([library, *rest])
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([*_library_modules(), *PRELOAD_EXTRA])
        _context = ctx
    return _context


def run(script: str | Path, snakemake, usage: str | Path | None = None) -> None:
    """Run `script` with `snakemake` (the object a Snakemake script sees) in a forked process;
    write its resource use to `usage` (a TSV) when it succeeds. A failure raises with the
    script's own error message (its traceback is in the job's log)."""
    with _start_lock:  # jobs start from several Snakemake threads
        ctx = _forkserver()
        errors, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_job, name=f"spp-job:{Path(script).name}",
                           args=(str(script), snakemake, usage and str(usage), child_end))
        _start(proc)
    child_end.close()
    try:
        report = _report(errors)  # returns when the job ends
        proc.join()
    except BaseException:
        proc.terminate()
        raise
    status, why = report or (proc.exitcode, None)
    if status != 0:
        why = f": {why}" if why else ""
        log = f" (traceback in {snakemake.log[0]})" if snakemake.log else ""
        raise RuntimeError(f"{Path(script).name} failed with exit status {status}{why}{log}")


def _start(proc, attempts: int = 20) -> None:
    """Start `proc`; if the server was just killed (a signal to the whole process group or job
    step) and is not reaped yet, multiprocessing still takes it for alive: wait and retry, and
    it starts a new one."""
    for attempt in range(attempts):
        try:
            with _main_hidden():
                proc.start()
            return
        except (ConnectionRefusedError, FileNotFoundError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)


def _report(errors) -> tuple[int, str | None] | None:
    """Wait for the job's end: its exit status and error as it sends them, or None if it could
    not (SIGKILL, say). The job's own word, not the exit code that the server relays: a SLURM
    signal to the whole job step also ends the server, and multiprocessing then reports 255 at
    once, while the job is still writing its checkpoint."""
    try:
        return errors.recv()
    except EOFError:
        return None
    finally:
        errors.close()


@contextlib.contextmanager
def _main_hidden():
    """multiprocessing re-runs the parent's main script in every child, for a target defined
    there (the forkserver's preload of it never happens: CPython 3.11 looks for a 'main_path' key
    that its preparation data calls 'init_main_from_path'). Our target lives in this module, and
    for the `snakemake` command that script imports Snakemake's whole CLI: 3.6 CPU-s per job on
    the slow machine. So the child is started while __main__ is a bare module."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _job(script: str, snakemake, usage: str | None, errors) -> None:
    start = time.perf_counter()
    try:
        runpy.run_path(script, init_globals={"snakemake": snakemake}, run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):  # sys.exit(0) is a success
            errors.send((e.code if isinstance(e.code, int) else 1, f"{type(e).__name__}: {e}"))
            raise
    except BaseException as e:
        errors.send((1, f"{type(e).__name__}: {e}"))
        raise
    if usage:
        write_usage(usage, time.perf_counter() - start)
    errors.send((0, None))


def pid_note() -> str:
    """The end of a job's first log line: its PID, the handle to signal it by (a forked job's
    command line is the server's, not its script's)."""
    return f"pid {os.getpid()}"


def logged_pid(log: str | Path) -> int | None:
    """The PID a job's log names on its first line (`pid_note`), or None if not written yet."""
    try:
        first = Path(log).read_text(errors="replace").split("\n", 1)[0]
    except OSError:
        return None
    m = re.search(r" pid (\d+)$", first)
    return int(m.group(1)) if m else None


def write_usage(path: str | Path, seconds: float) -> None:
    """This process's wall time since the job started, its CPU time (and its children's) and
    peak RSS in MB, as one row of a Snakemake-benchmark-style TSV."""
    from spp.atomic import write_text

    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    rss_mb = max(own.ru_maxrss, children.ru_maxrss) / 1024  # KiB on Linux
    hms = time.strftime("%H:%M:%S", time.gmtime(seconds))
    write_text(path, "\t".join(USAGE_COLUMNS) + "\n"
               + f"{seconds:.4f}\t{hms}\t{rss_mb:.2f}\t{cpu:.2f}\n")
