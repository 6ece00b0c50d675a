"""Helpers shared by the workflow's thin scripts: logging, devices, files, network rebuild."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import spp.jobs
import torch
from spp.atomic import load_tensors
from spp.nets.models import build_model
from spp.pruning.masks import apply_mask
from spp.tables.experiments import DATASET_SHAPES


def start(snakemake):
    """Open the rule's log and return a `log(*args)` that writes to it.

    Every job is a process of its own (spp.jobs): stdout/stderr, tracebacks included, go to the
    log too, and torch gets one thread per core of the job. The log names the interpreter, so
    that it shows which deployed environment (--sdm) ran the job.
    """
    f = None
    if snakemake.log:
        path = Path(snakemake.log[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        keep_previous_attempt(path)
        f = open(path, "w", buffering=1)  # noqa: SIM115 (lives as long as the job)
        sys.stdout = sys.stderr = f
    torch.set_num_threads(max(1, int(snakemake.threads)))

    def log(*args) -> None:
        print(f"[{time.strftime('%H:%M:%S')}]", *args, file=f or sys.stdout, flush=True)

    log(f"rule {snakemake.rule} wildcards {dict(snakemake.wildcards)} {spp.jobs.pid_note()}")
    log(f"python {sys.executable} (prefix {sys.prefix})")  # the interpreter Snakemake deployed
    return log


def keep_previous_attempt(path: Path) -> Path | None:
    """A retried or rerun job keeps the failed attempt's log: ``<log>.attempt<k>`` (k = 1, 2...).
    Snakemake reopens the same log path for every attempt, which would overwrite the one that
    says why it failed."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    k = 1
    while path.with_name(f"{path.name}.attempt{k}").exists():
        k += 1
    kept = path.with_name(f"{path.name}.attempt{k}")
    path.replace(kept)
    return kept


def log(*args) -> None:
    """Module-level log to stdout (a script job's stdout is its log file after `start`)."""
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pick_device(preference: str = "auto") -> torch.device:
    """CPU, or a CUDA GPU not claimed by another job of this machine (CUDA_VISIBLE_DEVICES
    respected). A claim is a lock file holding our PID, removed at exit; stale claims of dead
    processes are taken over. Without a free GPU, the visible one with most free memory."""
    if preference == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if preference == "cuda":
            raise RuntimeError("device: cuda requested but no CUDA GPU is visible")
        return torch.device("cpu")
    n = torch.cuda.device_count()
    free = []
    for i in range(n):
        try:
            free.append(torch.cuda.mem_get_info(i)[0])
        except RuntimeError:
            free.append(0)
    order = sorted(range(n), key=lambda i: -free[i])
    lock_dir = Path(os.environ.get("SPP_GPU_LOCK_DIR", f"/tmp/spp-gpu-locks-{os.getuid()}"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    for i in order:
        lock = lock_dir / f"{torch.cuda.get_device_properties(i).uuid}.lock"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _pid_alive(pid):
                    break
                lock.unlink(missing_ok=True)  # stale claim
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            import atexit

            atexit.register(lambda p=lock: p.unlink(missing_ok=True))
            return torch.device(f"cuda:{i}")
    return torch.device(f"cuda:{order[0]}")


def build(net: dict) -> torch.nn.Module:
    """The architecture of a net (params.net: arch, activation, width, dataset), uninitialized."""
    shape, classes = DATASET_SHAPES[net["dataset"]]
    return build_model(net["arch"], shape, classes, activation=net["activation"],
                           width=net["width"])


def load(path) -> dict:
    """A per-seed tensor file of a stage folder; one missing is named with the fix (Snakemake
    tracks the folder, so it cannot see a file deleted inside a finished one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from {path.parent}: a file was deleted inside a finished stage "
            f"folder, which Snakemake cannot see. Delete the folder {path.parent} and rerun: "
            "Snakemake rebuilds it and everything downstream")
    return load_tensors(path)  # a refused or damaged file: named (spp.atomic)


def network(net: dict, weights_file, mask_file=None, device="cpu"):
    """Rebuild a net, load its weights, and (given a mask) apply the mask on `device`."""
    model = build(net)
    model.load_state_dict(load(weights_file))
    model.to(device)
    mask = None
    if mask_file is not None:
        mask = {k: v.to(device) for k, v in load(mask_file).items()}
        apply_mask(model, mask)
    return model, mask
