"""Start-up cost of one workflow job: a fresh `python` per job (what Snakemake's `script:` does)
against a job forked from a server that imported torch and spp once (spp.jobs, what every rule
does), in the same run.

Each job is a real thin script of the shape of workflow/scripts/*.py: it imports spp and the
modules a stage script imports, writes one file, and exits, so the difference is all start-up.

    python benchmarks/job_start.py            # 10 jobs each way
    python benchmarks/job_start.py --jobs 20
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from spp import jobs  # noqa: E402

JOB = """
import spp, spp.data.datasets, spp.train.training, spp.paths
import torch
torch.set_num_threads(1)
open(snakemake.output[0], "w").write(str(torch.get_num_threads()))
"""

FRESH = """
import types, sys
snakemake = types.SimpleNamespace(output=[sys.argv[1]])
""" + JOB


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="job_start_"))
    (tmp / "fresh.py").write_text(FRESH)
    (tmp / "forked.py").write_text(JOB)
    env = {"PYTHONPATH": str(REPO / "workflow")}

    t0, c0 = time.perf_counter(), children_cpu()
    for i in range(args.jobs):
        subprocess.run([sys.executable, str(tmp / "fresh.py"), str(tmp / f"fresh{i}")],
                       check=True, env=env)
    fresh_wall, fresh_cpu = time.perf_counter() - t0, children_cpu() - c0

    t0 = time.perf_counter()  # the server's start: once per Snakemake process
    jobs.run(tmp / "forked.py", types.SimpleNamespace(output=[str(tmp / "warmup")], log=[]))
    server = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(args.jobs):
        jobs.run(tmp / "forked.py", types.SimpleNamespace(output=[str(tmp / f"fork{i}")], log=[]))
    forked_wall = time.perf_counter() - t0

    n = args.jobs
    print(f"python {sys.version.split()[0]}, {n} jobs each way")
    print(f"fresh python per job : {fresh_wall / n:6.3f} s wall/job, "
          f"{fresh_cpu / n:6.3f} CPU-s/job")
    print(f"forked (spp.jobs)    : {forked_wall / n:6.3f} s wall/job "
          f"(+ {server:.1f} s once, to start the server)")
    print(f"ratio                : {fresh_wall / forked_wall:6.1f}x less start-up wall per job")


if __name__ == "__main__":
    main()
