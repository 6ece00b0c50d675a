"""Seed stacking: S seeds of an MLP on MNIST in one process, against one seed at a time.

Prints, from one run on the same machine and thread count:

- the plain PyTorch loop (DataLoader over a TensorDataset of pre-normalised floats, shuffle,
  ``loss.item()`` every step; the baseline of ``train_throughput.py``), it/s for one seed;
- the ``spp.train.training.train`` engine, it/s for one seed;
- ``spp.train.stacked.train_stacked`` with S seeds (default 10), in *seed-iterations* per second
  (S x its stacked steps per second), each seed with its own mask (90% random sparsity);
- the ratios, and the fraction of the CPU's peak arithmetic each reaches: FLOPs of one
  training step counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products only;
  elementwise work is not counted), times the measured rate, divided by the peak measured in the
  same run with fp32 square matrix products (best of several sizes, once per repeat, median)
  on the same threads; and the arithmetic ceiling, peak / FLOPs per seed-step.

Repeats alternate plain / engine / stacked so that load from other processes hits all three
alike; medians are printed. Engine and stacked rates exclude their single evaluation at the end
(the evaluation splits are cut to 1,000 images and timed apart by the engines' own logs).

    python benchmarks/stacked_seeds.py                       # 10 seeds, 1 thread, 3 repeats
    python benchmarks/stacked_seeds.py --seeds 10 --threads 2 --repeats 5
    python benchmarks/stacked_seeds.py --arch lenet300          # another network of the tables
"""

from __future__ import annotations

import argparse
import copy
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import spp
import torch
import torch.nn.functional as F
from spp.train.stacked import stack_models, train_stacked
from spp.train.training import TrainConfig, train
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from flops import peak_flops, step_flops  # noqa: E402  (counted FLOPs, measured peak)
from train_throughput import mnist_splits, plain_loop  # noqa: E402  (the shared baseline)

REPO = HERE.parent


def stacked_step_flops(models, batch_size: int, input_shape) -> int:
    """The same count for one stacked step of all seeds (equals S x one seed if nothing is
    recomputed: a check that stacking adds no arithmetic)."""
    st = stack_models(models)
    x = torch.randn(len(models), batch_size, *input_shape)
    y = torch.randint(0, 10, (len(models) * batch_size,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(st(x).flatten(0, 1), y).backward()
    return counter.get_total_flops()


_RATE = re.compile(r"iter (\d+)/(\d+) .* ([\d.]+) it/s")


def _logged_rate(lines: list[str]) -> float:
    """The engines log their own it/s at the last iteration, before evaluating."""
    for line in reversed(lines):
        m = _RATE.search(line)
        if m and m.group(1) == m.group(2):
            return float(m.group(3))
    raise RuntimeError(f"no rate in the engine's log: {lines[-3:]}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="mlp-7-tanh",
                   help="an MLP: mlp-K-ACT or lenet300 (default mlp-7-tanh)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--iterations", type=int, default=500, help="plain loop and engine, per run")
    p.add_argument("--stacked-iterations", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--peak-size", type=int, default=None,
                   help="one matmul size for the peak (default: best of 256..2048)")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with the original MNIST (else the shipped subset is used)")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.repeats < 1 or a.iterations < 1 or a.stacked_iterations < 1:
        raise ValueError("--seeds, --repeats, --iterations, --stacked-iterations must be >= 1")
    torch.set_num_threads(a.threads)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {a.threads} CPU thread(s)", flush=True)

    splits, what = mnist_splits(a.shared)
    shape, bsz = splits.input_shape, 100
    seeds = list(range(a.seeds))
    models = [spp.initialize(spp.build_model(a.arch, shape, 10), "vs-lecun", seed=s)
              for s in seeds]
    if not isinstance(models[0], spp.nets.models.MLP):
        p.error(f"--arch {a.arch!r} is not an MLP; allowed: mlp-K-ACT (e.g. mlp-7-tanh), lenet300")
    masks = []
    for s in seeds:
        g = torch.Generator().manual_seed(1000 + s)
        masks.append({n: torch.rand(w.shape, generator=g) >= a.sparsity
                      for n, w in spp.prunable_parameters(models[s]).items()})
    x_cpu, y_cpu = splits.normalize(splits.x["train"]), splits.y["train"]

    def cfg(n, seed=0):
        return TrainConfig(iterations=n, batch_size=bsz, eval_every=n, log_every=n, seed=seed)

    def run_plain():
        m = copy.deepcopy(models[0])
        t = time.perf_counter()
        plain_loop(m, x_cpu, y_cpu, a.iterations, bsz, torch.device("cpu"))
        return a.iterations / (time.perf_counter() - t)

    def run_engine():
        lines = []
        train(copy.deepcopy(models[0]), masks[0], splits, cfg(a.iterations), log=lines.append)
        return _logged_rate(lines)

    def run_stacked():
        lines = []
        train_stacked(copy.deepcopy(models), masks, splits, cfg(a.stacked_iterations), seeds,
                      log=lines.append)
        return _logged_rate(lines) * a.seeds  # seed-iterations per second

    # warm-up (allocator, thread pools), not timed
    plain_loop(copy.deepcopy(models[0]), x_cpu, y_cpu, 20, bsz, torch.device("cpu"))
    train(copy.deepcopy(models[0]), masks[0], splits, cfg(20), log=lambda _: None)
    train_stacked(copy.deepcopy(models), masks, splits, cfg(20), seeds, log=lambda _: None)

    rates = {"plain": [], "engine": [], "stacked": []}
    peaks = []  # measured with each repeat: the load on a shared machine changes
    for r in range(a.repeats):
        rates["plain"].append(run_plain())
        rates["engine"].append(run_engine())
        rates["stacked"].append(run_stacked())
        peaks.append(peak_flops("cpu", size=a.peak_size, seconds=1.2))
        print(f"  repeat {r + 1}: plain {rates['plain'][-1]:.1f} it/s, engine "
              f"{rates['engine'][-1]:.1f} it/s, stacked {rates['stacked'][-1]:.1f} seed-it/s, "
              f"peak {peaks[-1] / 1e9:.1f} GFLOP/s", flush=True)
    peak = statistics.median(peaks)
    one = step_flops(models[0], bsz, shape)
    group = stacked_step_flops(models, bsz, shape)
    med = {k: statistics.median(v) for k, v in rates.items()}

    print(f"\n{a.arch} on {what}, batch {bsz}, CPU, {a.threads} thread(s), medians of "
          f"{a.repeats} alternating repeats ({a.iterations} its plain/engine, "
          f"{a.stacked_iterations} stacked steps)")
    print(f"counted FLOPs per seed-step {one / 1e6:.1f} M (stacked step {group / 1e6:.1f} M = "
          f"{group / one:.2f} x one seed); peak {peak / 1e9:.1f} GFLOP/s "
          f"(best fp32 square matmul of {a.peak_size or '256..2048'}, median over the repeats, "
          "measured in this run)")
    print(f"arithmetic ceiling at 100% of that peak: {peak / one:.0f} seed-it/s "
          f"({peak / one / med['plain']:.2f}x the plain loop)")
    for k, label, unit in (("plain", "plain DataLoader loop, 1 seed", "it/s"),
                           ("engine", "spp.train.training.train, 1 seed", "it/s"),
                           ("stacked", f"train_stacked, {a.seeds} seeds", "seed-it/s")):
        frac = med[k] * one / peak
        print(f"  {label:32s} {med[k]:9.1f} {unit:9s} {med[k] / med['plain']:6.2f}x plain  "
              f"{100 * frac:5.1f}% of peak")
    print(f"stacked / plain = {med['stacked'] / med['plain']:.2f}x, "
          f"stacked / engine = {med['stacked'] / med['engine']:.2f}x (seed-iterations per second)")


if __name__ == "__main__":
    main()
