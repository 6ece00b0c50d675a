"""Start-up cost of one workflow job, both ways a `script:` job runs (spp.jobs), in the same run:
its own fresh interpreter (under --sdm, or `warm_start: false`), and handed to a warm server of
the same environment that imported torch and spp once (the default of a local run).

Each job is a real script of the shape of workflow/scripts/*.py, run as Snakemake runs one (a
fresh `python <script>` whose first statement is `enter(snakemake)`): it imports spp and the
modules a stage script imports, writes one file and exits, so the difference is all start-up.

    python benchmarks/job_start.py            # 10 jobs each way
    python benchmarks/job_start.py --jobs 20
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from spp import jobs  # noqa: E402

JOB = """
import sys, types
from spp.jobs import enter
snakemake = types.SimpleNamespace(output=[sys.argv[1]], log=types.SimpleNamespace())
enter(snakemake)
import spp, spp.data.datasets, spp.train.training, spp.paths
import torch
torch.set_num_threads(1)
open(snakemake.output[0], "w").write(str(torch.get_num_threads()))
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_jobs(script: Path, outputs: list[Path], env: dict) -> tuple[float, float]:
    """Wall and CPU seconds (of this process's children) of running ``script`` once per output."""
    t0, c0 = time.perf_counter(), children_cpu()
    for out in outputs:
        subprocess.run([sys.executable, str(script), str(out)], check=True, env=env)
    return time.perf_counter() - t0, children_cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10)
    args = ap.parse_args()
    n = args.jobs
    tmp = Path(tempfile.mkdtemp(prefix="job_start_"))
    script = tmp / "job.py"
    script.write_text(JOB)
    base = {k: v for k, v in os.environ.items() if k not in (jobs.WARM, jobs.OWNER)}
    base["PYTHONPATH"] = str(REPO / "workflow")
    cold = base
    warm = {**base, jobs.WARM: "1", jobs.OWNER: str(os.getpid())}

    cold_wall, cold_cpu = run_jobs(script, [tmp / f"cold{i}" for i in range(n)], cold)
    server, _ = run_jobs(script, [tmp / "warmup"], warm)  # starts the server: once per Snakemake
    warm_wall, warm_cpu = run_jobs(script, [tmp / f"warm{i}" for i in range(n)], warm)

    print(f"python {sys.version.split()[0]}, {n} jobs each way")
    print(f"own interpreter per job : {cold_wall / n:6.3f} s wall/job, "
          f"{cold_cpu / n:6.3f} CPU-s/job")
    print(f"warm hand-over (default): {warm_wall / n:6.3f} s wall/job, "
          f"{warm_cpu / n:6.3f} CPU-s/job of the job process "
          f"(+ {server:.1f} s once, the first job, which starts the server)")
    print(f"ratio                   : {cold_wall / warm_wall:6.1f}x less start-up wall per job")


if __name__ == "__main__":
    main()
