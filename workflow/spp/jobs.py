"""How a job's script runs: its body once, in a process forked from a warm interpreter of the
same environment, or in the job's own process.

Every rule is a Snakemake `script:` job, so Snakemake deploys its software (`--sdm conda`,
`apptainer`, `env-modules`), tracks its code and shows it in the report. A fresh interpreter
spends seconds importing torch (3 s on the 2-core machine), more than most quick-preset jobs
compute, so where no deployment is requested (the Snakefile exports `SPP_WARM_START=1`) the job's
first statement, `enter(snakemake)`, hands the script to a server of this Snakemake
run that imported torch and this library once. The server forks a child that takes the job's
working folder, environment, sys.path, stdin/stdout/stderr and runs the script; the job process
that Snakemake started forwards its signals to that child and exits with its status. A server
is keyed by the interpreter, sys.path and environment of the job that started it, so a job never
runs in an environment other than the one Snakemake gave it; inside a container it steps aside.

No job outlives the Snakemake process that started it (`SPP_SNAKEMAKE_PID`, set by the
Snakefile): each job watches it and sends itself SIGTERM when it is gone, which a training job
answers by writing its checkpoint. A forked child also watches the job process it stands in for.

The job's resource use (wall, CPU, peak RSS) is written by the job itself to its `usage` log:
Snakemake's `benchmark:` would measure only the process it started, not the forked child.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import pickle
import re
import resource
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

WARM = "SPP_WARM_START"  # "1": this job may run in a warm interpreter
OWNER = "SPP_SNAKEMAKE_PID"  # the Snakemake process whose job this is
# Per-job values of the environment: they do not change what the server imported, so they do
# not pick another server (the child takes the job's own values of every variable).
PER_JOB_ENV = re.compile(r"^(SNAKEMAKE_.*|TMPDIR|TEMP|TMP|TEMPDIR|OMP_NUM_THREADS|MKL_NUM_THREADS"
                         r"|OPENBLAS_NUM_THREADS|VECLIB_MAXIMUM_THREADS|NUMEXPR_NUM_THREADS"
                         r"|CUDA_VISIBLE_DEVICES|_)$")
# Imported once by the server besides the library (torch with it): what the scripts import and
# what the Snakemake preamble of a script unpickles, and torch._dynamo, which the first
# optimizer of a process imports (2.5 s of every training job, py-spy).
PRELOAD_EXTRA = ("pandas", "matplotlib", "matplotlib.pyplot", "seaborn", "snakemake.iocontainers",
                 "snakemake.logging", "torch._dynamo")
IDLE_SECONDS = 300  # a server with no job for this long exits
POLL_SECONDS = 0.5  # how often a job checks that its Snakemake (and job process) still runs
START_SECONDS = 120  # a server not answering after this long: the job runs in its own process
USAGE_COLUMNS = ("s", "h:m:s", "max_rss", "cpu_time")  # names as in Snakemake's benchmark files

_running = False  # True while this process runs a script's body


def enter(snakemake) -> None:
    """The first statement of every workflow script. Runs the rest of the script once, in a
    warm child or in this process, exits with its status; returns only inside that run."""
    if _running:
        return
    script_file = sys.argv[0]  # the file Snakemake runs: its preamble, then the script
    usage, lock = _usage_path(snakemake), _lock_path(snakemake)
    status = None
    if os.environ.get(WARM) == "1" and not _in_container():
        status = _hand_over(script_file, usage, lock)
    if status is None:
        status = execute(script_file, usage=usage, lock=lock)
    sys.exit(status)


def execute(script_file: str, usage: str | None = None, lock: str | None = None,
            also: int | None = None) -> int:
    """Run a script's body in this process, watched by `_watch_owner` (one watch: two would
    signal twice, the second inside the job's own handling of the first), as the sole writer of
    its outputs (`lock`); its exit status."""
    global _running
    _running = True
    _watch_owner(also)
    start = time.perf_counter()
    try:
        with sole_writer(lock):
            runpy.run_path(script_file, run_name="__main__")
    except Busy as e:
        print(f"[jobs] {e}", file=sys.stderr)
        return 1
    except SystemExit as e:
        if e.code not in (None, 0):
            print(f"{Path(script_file).name}: exit {e.code}", file=sys.stderr)
            return e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 (the job's own error, to its log)
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    if usage:
        write_usage(usage, time.perf_counter() - start)
    return 0


class Busy(RuntimeError):
    """Another process is running the job that writes these outputs."""


@contextlib.contextmanager
def sole_writer(lock: str | Path | None):
    """Hold `lock` (beside the job's first output) while the job runs. A second Snakemake on the
    same results folder (after `--unlock`) would otherwise train the same cell, on the same
    checkpoint, as the first; it is refused, naming the process that holds the cell."""
    if lock is None:
        yield
        return
    path = Path(lock)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise Busy(f"{path.name[:-5]} is being made by {holder}; refusing a second writer.\n"
                       f"Wait for it, or stop that process first (lock: {path})") from None
        f.truncate(0)
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still held: no other writer can be between


def _lock_path(snakemake) -> str | None:
    try:
        first = str(snakemake.output[0])
    except (AttributeError, IndexError):
        return None
    return f"{first.rstrip('/')}.lock"


def _usage_path(snakemake) -> str | None:
    try:
        return snakemake.log.usage
    except AttributeError:
        return None


def _in_container() -> bool:
    return any(k in os.environ for k in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"))


# --- watching the owner ------------------------------------------------------------------------

def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _watch_owner(also: int | None = None) -> None:
    """SIGTERM to this process once its Snakemake (or the job process `also`) is gone."""
    owners = [p for p in (_owner(), also) if p]
    if not owners:
        return

    def watch():
        while all(alive(p) for p in owners):
            time.sleep(POLL_SECONDS)
        print(f"[jobs] process {', '.join(map(str, owners))} ended: stopping this job "
              f"(pid {os.getpid()})", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="spp-owner-watch", daemon=True).start()


def _owner() -> int | None:
    try:
        return int(os.environ.get(OWNER, ""))
    except ValueError:
        return None


# --- the job process's side --------------------------------------------------------------------

def _key() -> str:
    env = sorted((k, v) for k, v in os.environ.items() if not PER_JOB_ENV.match(k))
    blob = repr((sys.executable, sys.prefix, sys.path, env)).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _socket_dir() -> Path:
    d = Path(os.environ.get("SPP_JOBS_DIR", f"/tmp/spp-jobs-{os.getuid()}"))
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def _hand_over(script_file: str, usage: str | None, lock: str | None) -> int | None:
    """Run the script in a child of the warm server: its exit status, or None if no server
    could be reached or started (the job then runs in its own process)."""
    sock = _connect()
    if sock is None:
        return None
    request = {"script": str(Path(script_file).resolve()), "cwd": os.getcwd(),
               "env": dict(os.environ), "path": list(sys.path), "argv": list(sys.argv),
               "client": os.getpid(), "usage": usage, "lock": lock}
    with sock:
        try:
            socket.send_fds(sock, [_frame(request)], [0, 1, 2])
            child = _recv(sock)
        except (OSError, EOFError):
            return None  # the server went away before forking: run here
        forward = _forward_signals(child)
        try:
            status = _recv(sock)
        except (OSError, EOFError):
            status = None
        finally:
            forward()
    if status is None:
        print(f"[jobs] job process {child} ended without a status (killed?)", file=sys.stderr)
        return 1
    return status


def _forward_signals(pid: int):
    """Pass SIGTERM, SIGINT and SIGHUP on to the child; returns the undo."""
    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def handle(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {s: signal.signal(s, handle) for s in sigs}
    return lambda: [signal.signal(s, h) for s, h in previous.items()]


def _connect() -> socket.socket | None:
    path = _socket_dir() / f"{_key()}.sock"
    sock = _try_connect(path)
    if sock is not None:
        return sock
    with open(path.with_suffix(".lock"), "w") as lock:  # one job starts the server
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _try_connect(path)
        if sock is not None:
            return sock
        path.unlink(missing_ok=True)
        log = path.with_suffix(".log")
        with open(log, "ab") as out:
            server = subprocess.Popen(
                [sys.executable, "-c", "import sys; from spp.jobs import serve; serve(sys.argv[1])",
                 str(path)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and server.poll() is None:
            sock = _try_connect(path)
            if sock is not None:
                return sock
            time.sleep(0.05)
        print(f"[jobs] the warm server did not start (see {log}): running in this process",
              file=sys.stderr)
        return None


def _try_connect(path: Path) -> socket.socket | None:
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _frame(obj) -> bytes:
    data = pickle.dumps(obj)
    return struct.pack("!I", len(data)) + data


def _recv(sock: socket.socket):
    head = _exactly(sock, 4)
    return pickle.loads(_exactly(sock, struct.unpack("!I", head)[0]))


def _exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise EOFError("connection closed")
        buf += part
    return buf


# --- the server's side -------------------------------------------------------------------------

def serve(path: str) -> None:
    """Import torch and the library once, then fork a child per job until this Snakemake run
    ends or no job came for IDLE_SECONDS."""
    import importlib
    import pkgutil

    import spp

    for name in ["spp", *(m.name for m in pkgutil.walk_packages(spp.__path__, "spp.")),
                 *PRELOAD_EXTRA]:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    owner = _owner()
    tmp = f"{path}.{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(tmp)
    listener.listen(64)
    os.replace(tmp, path)  # appears only when warm
    inode = os.stat(path).st_ino
    children: set[int] = set()
    last = time.monotonic()
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        while True:
            for _ in sel.select(timeout=1.0):
                conn, _ = listener.accept()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _child(conn)  # never returns
                children.add(pid)
                conn.close()
                last = time.monotonic()
            children = {p for p in children if os.waitpid(p, os.WNOHANG) == (0, 0)}
            gone = owner is not None and not alive(owner)
            idle = not children and time.monotonic() - last > IDLE_SECONDS
            if gone or idle:
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_ino == inode:  # not a newer server's
                        os.unlink(path)
                return


def _child(conn: socket.socket) -> None:
    """Become the job: its folder, environment, path, stdio; run the script; report."""
    status = 1
    try:
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        head, body = msg[:4], msg[4:]
        while len(body) < struct.unpack("!I", head)[0]:
            body += conn.recv(1 << 20)
        req = pickle.loads(body)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.path[:] = req["path"]
        sys.argv[:] = req["argv"]
        conn.sendall(_frame(os.getpid()))
        # also stop when the job process is gone (SIGKILL), not only its Snakemake
        status = execute(req["script"], usage=req["usage"], lock=req["lock"], also=req["client"])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(_frame(status))
        os._exit(status)


# --- what a job tells about itself -------------------------------------------------------------

def pid_note() -> str:
    """The end of a job's first log line: the PID of the process running the script, the
    handle to signal it by (a forked job's command line is the server's, not its script's)."""
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
