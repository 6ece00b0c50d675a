"""A throwaway single-node SLURM cluster on localhost, for testing the SLURM profile for real.

Everything lives in one temporary folder: its own MUNGE key and socket, a slurm.conf (this host
as the only node, its real CPUs and memory from ``slurmd -C``, partition ``debug``, no accounting
storage), state and spool folders, logs. The daemons run in the foreground (``-D`` / ``-F``) as
our own child processes, found again by PID, so the cluster never touches ``/etc`` or a real
cluster's daemons, and :meth:`SlurmCluster.stop` can end exactly what it started.

Client commands (sbatch, squeue, Snakemake and its SLURM plugin) reach this cluster through
:attr:`SlurmCluster.env` (``SLURM_CONF`` plus a ``PATH`` entry, see :meth:`_write_srun_shim`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

# What a test needs on PATH; absent binaries are the only reason to skip (see `missing_binaries`).
REQUIRED_BINARIES = (
    "munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel",
)


def missing_binaries() -> list[str]:
    """The required SLURM/MUNGE programs that are not installed (empty: the cluster can start)."""
    return [b for b in REQUIRED_BINARIES if shutil.which(b) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> str:
    """This host as a slurm.conf node line would describe it: ``CPUs=.. RealMemory=..`` etc.

    Taken from ``slurmd -C`` so slurmd's registration matches exactly (a node that claims more
    memory or CPUs than it has is drained as "Low RealMemory" / "Low socket*core*thread count").
    """
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0].split()
    keep = [t for t in first if t.split("=", 1)[0] not in ("NodeName", "UpTime")]
    if not any(t.startswith("CPUs=") for t in keep):
        raise RuntimeError(f"unexpected `slurmd -C` output: {out!r}")
    return " ".join(keep)


class SlurmCluster:
    """Start with :meth:`start`, end with :meth:`stop` (idempotent; also kills leftover jobs)."""

    partition = "debug"
    urgent_partition = "urgent"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf_path = self.root / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ)

    # ---- configuration ------------------------------------------------------------------

    def slurm_conf(self) -> str:
        r = self.root
        user = os.environ.get("USER") or ("root" if os.geteuid() == 0 else str(os.geteuid()))
        return "\n".join([
            "ClusterName=spptest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.d_port}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire: a requeued job may start again this many seconds after it was
            # stopped (SLURM's default, 120 s, is long for a test).
            f"AuthInfo=socket={r / 'munge' / 'munge.socket'},cred_expire=10",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            f"PlugStackConfig={r / 'plugstack.conf'}",
            "MailProg=/bin/true",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            # Look at pending jobs every few seconds, not every 30/60 s (a requeued job would
            # otherwise wait up to a minute after it became eligible again).
            "SchedulerParameters=sched_interval=3,bf_interval=3",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            # Finished jobs stay visible to `squeue --states=all` for 5 min: the plugin polls
            # with squeue here (no accounting database for sacct) and needs to see them end.
            "MinJobAge=300",
            # Grace between SIGTERM and SIGKILL at a time limit, cancel or requeue.
            "KillWait=10",
            "InactiveLimit=0",
            f"NodeName={self.node} NodeAddr=127.0.0.1 {self.hardware} State=UNKNOWN",
            # Preemption as on shared clusters: a job in the higher-tier partition `urgent`
            # requeues the `debug` jobs it needs the CPUs of (SIGTERM, KillWait, SIGKILL).
            "PreemptType=preempt/partition_prio",
            "PreemptMode=REQUEUE",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE "
            "State=UP PriorityTier=1",
            f"PartitionName={self.urgent_partition} Nodes={self.node} MaxTime=INFINITE State=UP "
            "PriorityTier=2",
            "",
        ])

    def _write_srun_shim(self) -> Path:
        """A ``srun`` that sets SLURM_CONF, first on the jobs' PATH.

        Why: the plugin's job step (snakemake-executor-plugin-slurm-jobstep) launches each job's
        command with ``srun`` after deleting every ``SLURM_*`` variable but a few, SLURM_CONF
        included. On a real cluster srun then finds /etc/slurm/slurm.conf (or configless mode);
        this cluster's config lives in a temp folder, so srun needs to be told where.
        """
        bindir = self.root / "bin"
        bindir.mkdir(exist_ok=True)
        shim = bindir / "srun"
        shim.write_text(
            "#!/bin/sh\n"
            f"SLURM_CONF='{self.conf_path}' exec '{shutil.which('srun')}' \"$@\"\n"
        )
        shim.chmod(0o755)
        return bindir

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Bring the cluster up; on any failure stop what was started, then raise."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> SlurmCluster:
        r = self.root
        for sub in ("munge", "state", "spool", "log"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "munge").chmod(0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (r / "plugstack.conf").write_text("")
        self.ctld_port, self.d_port = _free_port(), _free_port()
        self.hardware = node_hardware()
        self.cpus = int(re.search(r"\bCPUs=(\d+)", self.hardware).group(1))
        self.conf_path.write_text(self.slurm_conf())
        bindir = self._write_srun_shim()
        self.env["SLURM_CONF"] = str(self.conf_path)
        self.env["PATH"] = f"{bindir}{os.pathsep}{self.env.get('PATH', '')}"
        for var in [v for v in self.env if v.startswith(("SBATCH_", "SRUN_", "SQUEUE_"))]:
            del self.env[var]

        m = r / "munge"
        self._spawn("munged", [
            "munged", "--foreground", "--force", f"--key-file={key}",
            f"--socket={m / 'munge.socket'}", f"--pid-file={m / 'munged.pid'}",
            f"--seed-file={m / 'munged.seed'}", f"--log-file={m / 'munged.log'}",
        ])
        self._wait_for(lambda: (m / "munge.socket").exists(), 15, "munged to create its socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._spawn("slurmd", ["slurmd", "-D"])
        self._wait_for(self._node_idle, timeout, f"node {self.node} to become idle in sinfo")
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "wb")
        try:
            self.procs[name] = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            out.close()

    def _node_idle(self) -> bool:
        res = self.run(["sinfo", "-h", "-N", "-o", "%t"], check=False)  # a line per partition
        return res.returncode == 0 and set(res.stdout.split()) == {"idle"}

    def _wait_for(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}:\n"
                                   + self.diagnostics())
            if cond():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}:\n"
                           + self.diagnostics())

    def diagnostics(self) -> str:
        """The tails of every daemon log, for failure messages."""
        parts = []
        for f in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            if f.is_file():
                lines = f.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def run(self, argv: list[str], check: bool = True, timeout: float = 30):
        """Run a client command against this cluster; returns the CompletedProcess."""
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def job_states(self) -> dict[str, str]:
        """SLURM job id -> state of every job this controller still remembers."""
        out = self.run(["squeue", "-h", "--states=all", "-o", "%i|%T"]).stdout
        return dict(line.split("|", 1) for line in out.split())

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged: by PID, TERM then KILL.

        Job processes (slurmstepd and its children) outlive slurmd by design, so they are
        cancelled first and any survivor that carries our SLURM_CONF is ended by PID.
        """
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            self.run(["scancel", "--full", "--quiet", f"--partition={self.partition}"],
                     check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    states = self.job_states().values()
                except (subprocess.SubprocessError, OSError):
                    break
                if not any(s in ("RUNNING", "COMPLETING", "PENDING", "CONFIGURING")
                           for s in states):
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for pid in self._leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _leftover_pids(self) -> list[int]:
        """PIDs of processes whose environment names our slurm.conf (job steps we caused)."""
        needle = f"SLURM_CONF={self.conf_path}".encode()
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                env = (d / "environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0"):
                pids.append(int(d.name))
        return pids

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
