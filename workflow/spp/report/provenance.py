"""Provenance of a report: what a colleague needs to judge (and rerun) the numbers."""

from __future__ import annotations

import collections
import datetime
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

PACKAGES = ("spp", "torch", "numpy", "pandas", "matplotlib", "seaborn", "snakemake")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_summary() -> dict:
    """The machine building the report: CPU model and cores, visible CUDA GPUs."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = []
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    cores = os.cpu_count() or 0
    text = f"{platform.node()}: {cpu}, {cores} cores" + (
        f", GPUs: {', '.join(gpus)}" if gpus else ", no GPU"
    )
    return {"host": platform.node(), "cpu": cpu, "cores": cores, "gpus": gpus, "summary": text}


def training_devices(train_dirs: Sequence[str | os.PathLike]) -> dict[str, int]:
    """How many training runs ran on which device, from the metrics.json of every seed."""
    counts: collections.Counter = collections.Counter()
    for d in train_dirs:
        for path in sorted(Path(d).glob("seed*/metrics.json")):
            try:
                counts[str(json.loads(path.read_text()).get("device", "unknown"))] += 1
            except (OSError, ValueError):
                counts["unreadable metrics.json"] += 1
    return dict(counts.most_common())


def _git(repo_dir: str | os.PathLike, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


def git_commit(repo_dir: str | os.PathLike) -> str:
    try:
        rev = _git(repo_dir, "rev-parse", "--short", "HEAD")
        dirty = _git(repo_dir, "status", "--porcelain", "--untracked-files=no")
        return f"git {rev}" + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"


def collect(
    config: Mapping,
    seeds_per_table: Mapping[str, Sequence[int]],
    datasets: Sequence[str],
    train_dirs: Sequence[str],
    repo_dir: str,
) -> dict:
    data = config.get("data", {})
    return {
        "preset": config.get("preset", "?"),
        "preset_note": config.get("preset_note", ""),
        "comparable": bool(config.get("figures", {}).get("summary", {}).get("comparable", False)),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seeds": list(config.get("seeds", [])),
        "seeds_per_table": {t: sorted(s) for t, s in seeds_per_table.items()},
        "data": {
            "source": data.get("source"),
            "mirror": data.get("mirror"),
            "datasets": sorted(datasets),
        },
        "packages": package_versions(),
        "device": device_summary(),
        "training_devices": training_devices(train_dirs),
        "git": git_commit(repo_dir),
    }
