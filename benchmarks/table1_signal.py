"""Table 1 of Lee et al. (2020) on the full MNIST training split: signal propagation at init.

For each SG(gamma) init of mlp-7-tanh: Jacobian singular values (logits w.r.t. input, every
training image) at initialisation, then supervised connection sensitivity over the training
split (batches of 100), 90% global pruning, per-layer sparsity. Prints our numbers beside the
paper's, plus the time the Jacobian pass took. Several seeds: the mean over seeds is shown.

    python benchmarks/table1_signal.py                         # gammas 1e-4 1e-2 1 10, seed 0
    python benchmarks/table1_signal.py --seeds 0 1 2 3 --threads 2   # average over seeds
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import spp
import spp.data.datasets
import torch

REPO = Path(__file__).resolve().parents[1]
PAPER = {  # gamma: (jsv mean, std, CN, per-layer sparsity)
    1e-4: (2.46e-07, 9.90e-08, 4.66e00, [0.97, 0.80, 0.80, 0.80, 0.80, 0.81, 0.48]),
    1e-3: (5.74e-04, 2.45e-04, 8.54e00, [0.97, 0.80, 0.80, 0.80, 0.80, 0.81, 0.48]),
    1e-2: (4.49e-01, 2.51e-01, 5.14e01, [0.96, 0.80, 0.80, 0.80, 0.81, 0.81, 0.49]),
    1e-1: (2.30e01, 2.56e01, 2.92e04, [0.96, 0.81, 0.82, 0.82, 0.82, 0.80, 0.45]),
    1.0: (1.03e03, 2.61e03, 3.34e11, [0.85, 0.88, 0.99, 1.00, 1.00, 1.00, 0.91]),
    10.0: (3.67e04, 2.64e05, math.inf, [0.84, 0.95, 1.00, 1.00, 1.00, 1.00, 1.00]),
}


def measure(data: spp.data.datasets.DataSplits, gamma: float, seed: int) -> dict:
    model = spp.build_model("mlp-7-tanh", data.input_shape, data.num_classes)
    spp.initialize(model, "sg", seed=seed, gamma=gamma)
    start = time.perf_counter()
    jsv = spp.jacobian_singular_values(model, data.batches("train", 100))
    jsv_seconds = time.perf_counter() - start
    scores = spp.score(model, "snip", data.batches("train", 100), loss="supervised")
    sparsity = list(spp.layer_sparsity(spp.global_mask(scores, 0.9)).values())
    return {**jsv, "sparsity": sparsity, "jsv_seconds": jsv_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=REPO.parent / "shared" / "data" / "mnist",
                        help="folder with the four original MNIST .gz files")
    parser.add_argument("--gammas", type=float, nargs="+", default=[1e-4, 1e-2, 1.0, 10.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (2 spin badly on a loaded 2-core box)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        spp.data.datasets.prepare("mnist", args.raw, Path(tmp) / "mnist.pt")
        data = spp.data.datasets.load(Path(tmp) / "mnist.pt")
    print(f"MNIST training split: {len(data.x['train'])} images; seeds {args.seeds}; "
          f"{args.threads} threads; torch {torch.__version__}\n")
    head = "| SG gamma | source | JSV mean | JSV std | CN | sparsity layers 1-7 |"
    print(head + "\n|" + " --- |" * 6)
    times = []
    for gamma in args.gammas:
        runs = [measure(data, gamma, seed) for seed in args.seeds]
        times += [r["jsv_seconds"] for r in runs]
        mean = {k: float(np.mean([r[k] for r in runs])) for k in ("mean", "std")}
        cn = float(np.mean([r["condition_number"] for r in runs]))
        sparsity = np.mean([r["sparsity"] for r in runs], axis=0)
        print(f"| {gamma:g} | ours | {mean['mean']:.2e} | {mean['std']:.2e} | {cn:.2e} | "
              + " ".join(f"{v:.2f}" for v in sparsity) + " |")
        if gamma in PAPER:
            m, s, c, sp = PAPER[gamma]
            print(f"| {gamma:g} | paper | {m:.2e} | {s:.2e} | {c:.2e} | "
                  + " ".join(f"{v:.2f}" for v in sp) + " |")
    print(f"\nJacobian pass over {len(data.x['train'])} images: "
          f"{min(times):.1f}-{max(times):.1f} s wall per run")


if __name__ == "__main__":
    main()
