"""benchmarks/gpu_check.sh --cpu-smoke: the GPU readiness script runs every part on the CPU at
toy size, each part reports success, and the files a device call brings back are there (at most
8, named as the device tool accepts)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FILES = {"numerics.png", "throughput.png", "gpu_hours.png", "summary.json", "pytest.log",
         "snakemake.log", "gpu_check.log"}


@pytest.mark.slow  # about 1.5 minutes on a 2-core machine
def test_cpu_smoke_runs_every_part(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-smoke"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1200)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text[-6000:]
    assert "RESULT: 5/5 parts passed" in r.stdout, text[-6000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["smoke"] is True
    parts = summary["parts"]
    assert [parts[k]["name"] for k in sorted(parts)] == [
        "tests", "numerics", "throughput", "gpu-hours", "snakemake"]
    for k, part in parts.items():
        assert part["ok"], (k, part["error"], part["lines"])

    files = {f.name for f in out.iterdir()}
    assert files == FILES and len(files) <= 8
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
    for name in ("numerics.png", "throughput.png", "gpu_hours.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "RESULT: 5/5 parts passed" in (out / "gpu_check.log").read_text()

    # what each part measured is there to read
    numerics = parts["2"]["data"]
    assert {"fp32 seed 0", "fp32 seed 1", "bf16+cl", "bf16+cl+graph", "fp32+graph",
            "bf16+cl+compile"} <= set(numerics["runs"])
    # on CPU every fast-path switch is ignored: the variants are the fp32 run, to the bit
    for label in ("bf16+cl", "bf16+cl+graph", "fp32+graph", "bf16+cl+compile"):
        assert numerics["verdicts"][label]["d_train_loss"] == 0.0, label
    rows = parts["3"]["data"]["rows"]
    assert {r["arch"] for r in rows} == {"mlp-7-tanh", "resnet32"}
    assert all(r["plain"] > 0 and r["engine"] > 0 and r["fast"] > 0 for r in rows)
    assert [r["stacked"] > 0 for r in rows if r["mlp"]] == [True]
    hours = parts["4"]["data"]["tables"]
    assert hours["table1"]["hours"]["workflow"] > 0
    checks = parts["5"]["data"]["checks"]
    assert checks["resumed from the checkpoint"] and checks["metrics.json says cpu"]
