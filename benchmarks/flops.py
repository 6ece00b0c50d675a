"""Counted FLOPs -> fraction of peak, and the paper preset's training time from measured it/s.

Three things, each usable from the other benchmarks:

- ``step_flops``: FLOPs of one training step (forward + backward) of a model, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device (shapes only, no arithmetic,
  so even WRN-16-8 counts in a second on a CPU). Matrix products and convolutions only:
  elementwise work (BN, activations, optimiser) is not counted, so fractions of peak are of the
  arithmetic that matters, and slightly flatter the engine.
- ``peak_flops``: the device's achievable peak, the best of square matrix products of a few sizes
  in the given dtype (fp32 on CPU; fp32/TF32 or bf16 on CUDA). Measured, not a datasheet figure.
- ``paper_training_runs``: every training run of a preset (config/config.yaml merged with the
  given preset file and the schema's defaults, expanded by ``spp.tables.experiments``):
  architecture, dataset, batch, iterations, number of runs (seeds included; shared runs counted
  once).

``python benchmarks/flops.py`` prints, per distinct network of the paper preset: runs, iterations,
counted GFLOP per step, the lower bound on its total time at this device's peak, and, with
``--measure``, the engine's measured it/s on this device (synthetic data of the right shape; a
short run) and the resulting estimate ``runs x iterations / (it/s)``. On a GPU box run it with
``--measure`` to get the real estimate; on CPU it measures only the MNIST-scale networks unless
``--measure-all`` (ResNet-110 on a 2-core CPU would take hours).

    python benchmarks/flops.py                              # counts, peak, lower bounds
    python benchmarks/flops.py --measure --iterations 50    # + engine it/s and estimated hours
    python benchmarks/flops.py --measure --fast --gpus 4    # on a GPU box, with the fast path
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]


def step_flops(model: torch.nn.Module, batch_size: int, input_shape, num_classes: int = 10) -> int:
    """Counted FLOPs of one training step (forward + backward) at ``batch_size``.

    Counts on a ``meta`` copy (shapes only) when the model is on CPU, so it is cheap.
    """
    import copy

    m = copy.deepcopy(model).to("meta")
    x = torch.empty(batch_size, *input_shape, device="meta")
    y = torch.zeros(batch_size, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(m(x), y).backward()
    return counter.get_total_flops()


def peak_flops(device="cpu", dtype=torch.float32, size: int | None = None,
               seconds: float = 2.0) -> float:
    """Achievable FLOP/s of square matrix products: the best timed batch over ``size`` (or, by
    default, several sizes: on a shared CPU a 2048^2 product is held back by the contended
    L3 cache and understates the core by ~2x, while 256^2-384^2 operands stay in its own L2)."""
    device = torch.device(device)
    if size is not None:
        sizes = (size,)
    else:
        sizes = (256, 384, 1024, 2048) if device.type == "cpu" else (4096, 8192)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        reps = max(3, int(2e9 // (2 * n**3)))  # >= ~2 GFLOP per timed batch
        torch.mm(a, b, out=c)
        sync()
        t_end = time.perf_counter() + seconds / len(sizes)
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=c)
            sync()
            best = max(best, reps * 2 * n**3 / (time.perf_counter() - t))
    return best


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load_preset(preset: Path = REPO / "config" / "paper.yaml") -> dict:
    """config/config.yaml merged with ``preset`` (as ``snakemake --configfile`` merges it), the
    schema's defaults filled in."""
    import yaml
    from snakemake.utils import validate

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if Path(preset).resolve() != (REPO / "config" / "config.yaml").resolve():
        cfg = _merge(cfg, yaml.safe_load(Path(preset).read_text()))
    validate(cfg, str(REPO / "config" / "config.schema.yaml"), set_default=True)
    return cfg


def _grouped(trained: dict, cfg: dict) -> list[dict]:
    """{Net: seeds} -> rows per (arch, activation, width, dataset) with its recipe and runs."""
    groups: Counter = Counter()
    for net, seeds in trained.items():
        groups[(net.arch, net.activation, net.width, net.train_dataset)] += len(seeds)
    out = []
    for (arch, act, width, ds), runs in sorted(groups.items(), key=str):
        t = cfg["training"][ds]
        out.append({"arch": arch, "activation": act, "width": width, "dataset": ds,
                    "batch_size": t["batch_size"], "iterations": t["iterations"], "runs": runs,
                    "recipe": dict(t)})
    return out


def trained_by_table(cfg: dict) -> dict[str, dict]:
    """{table: {Net: seeds}}: the networks each table of a loaded preset trains."""
    from spp.tables import experiments

    out = {}
    for table, rows in experiments.expand(cfg).items():
        trained: dict = {}
        for row in rows:
            for role, net in row["runs"].items():
                if "train" in row["needs"][role]:
                    trained.setdefault(net, set()).update(row["seeds"])
        if trained:
            out[table] = trained
    return out


def training_runs_by_table(cfg: dict) -> dict[str, list[dict]]:
    """The training runs of each table of a loaded preset (``load_preset``), grouped by network
    as ``paper_training_runs``; a run two tables share appears in both."""
    return {table: _grouped(trained, cfg) for table, trained in trained_by_table(cfg).items()}


def all_training_runs(cfg: dict) -> list[dict]:
    """Every training run of a loaded preset's tables, shared runs once (Frankle et al.'s
    section not included)."""
    union: dict = {}
    for trained in trained_by_table(cfg).values():
        for net, seeds in trained.items():
            union.setdefault(net, set()).update(seeds)
    return _grouped(union, cfg)


# training-set sizes for recipes given in epochs (Frankle et al. train on every training image)
TRAIN_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000,
                "cifar10-64": 50_000, "tiny-imagenet": 100_000}


def frankle_training_runs(cfg: dict) -> list[dict]:
    """Frankle et al.'s training runs (the ``frankle:`` section, if enabled): per network, every
    method x its ablations x sparsity x seed, plus one dense run per seed; iterations from the
    network's recipe (epochs counted over ``TRAIN_IMAGES``)."""
    fk = cfg.get("frankle") or {}
    if not fk or fk.get("enabled") is False:
        return []
    try:
        from spp.frankle.runs import ablations_for
    except ImportError:  # an older or newer library: every ablation for every method
        def ablations_for(method, ablations):
            return list(ablations)
    methods, ablations = fk.get("methods", []), fk.get("ablations", [])
    per_seed = (sum(len(ablations_for(m, ablations)) for m in methods)
                * len(fk.get("sparsities", [])))
    seeds = len(fk.get("seeds", []))
    out = []
    for net in fk.get("networks", []):
        ds = net["dataset"]
        recipe = dict(net.get("training") or (fk.get("training") or {}).get(ds)
                      or cfg["training"][ds])
        bsz = int(recipe["batch_size"])
        iterations = recipe.get("iterations")
        if iterations is None:
            iterations = round(recipe["epochs"] * (TRAIN_IMAGES[ds] // bsz))
        out.append({"arch": net["arch"], "activation": net.get("activation"),
                    "width": float(net.get("width", 1.0)), "dataset": ds, "batch_size": bsz,
                    "iterations": int(iterations), "runs": (per_seed + 1) * seeds,
                    "recipe": recipe, "name": net.get("name", net["arch"])})
    return out


def paper_training_runs(preset: Path = REPO / "config" / "paper.yaml") -> list[dict]:
    """Training runs of a preset, grouped by network: arch, activation, width, dataset,
    batch_size, iterations, runs (= seeds over every distinct trained net)."""
    return all_training_runs(load_preset(preset))


def synthetic_splits(dataset: str, n: int, device="cpu", seed: int = 0):
    """Random uint8 images and labels of ``dataset``'s shape (``n`` training images, 100 each
    for validation and test): for timing, not learning."""
    from spp.data.datasets import DataSplits
    from spp.tables.experiments import DATASET_SHAPES

    shape, classes = DATASET_SHAPES[dataset]
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    y = torch.randint(0, classes, (n,), generator=g)
    c = shape[0]
    return DataSplits(dataset, classes, shape, torch.full((c,), 0.5), torch.full((c,), 0.25),
                      {"train": x, "val": x[:100], "test": x[:100]},
                      {"train": y, "val": y[:100], "test": y[:100]}).to(device)


def engine_its(arch, activation, width, dataset, batch_size, device, iterations=50,
               fast: bool = False) -> float:
    """spp.train.training.train it/s on synthetic data of the dataset's shape (after a
    warm-up); ``fast``: with ``spp.train.fastpath.FastPath.for_device`` (needs train()'s ``fast``
    argument)."""
    import inspect

    from spp.nets.models import build_model
    from spp.tables.experiments import DATASET_SHAPES
    from spp.train.fastpath import FastPath
    from spp.train.training import TrainConfig, train

    shape, classes = DATASET_SHAPES[dataset]
    data = synthetic_splits(dataset, max(4 * batch_size, 1000), device)
    model = build_model(arch, shape, classes, activation=activation, width=width)
    augment = dataset != "mnist" and dataset != "fashion-mnist"
    kwargs = {}
    if fast:
        if "fast" not in inspect.signature(train).parameters:
            raise ValueError("--fast needs spp.train.training.train(..., fast=FastPath)")
        kwargs["fast"] = FastPath.for_device(device)
    warm = TrainConfig(iterations=5, batch_size=batch_size, augment=augment, log_every=5)
    train(model, None, data, warm, device, log=lambda _: None, **kwargs)
    lines = []
    cfg = TrainConfig(iterations=iterations, batch_size=batch_size, augment=augment,
                      eval_every=iterations, log_every=iterations)
    train(model, None, data, cfg, device, log=lines.append, **kwargs)
    rate = [ln for ln in lines if "it/s" in ln][-1]
    return float(rate.rsplit(" it/s", 1)[0].rsplit(" ", 1)[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", type=Path, default=REPO / "config" / "paper.yaml")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--measure", action="store_true", help="measure engine it/s per network")
    p.add_argument("--measure-all", action="store_true",
                   help="on CPU also measure the conv nets (slow)")
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--fast", action="store_true", help="measure with the GPU fast path")
    p.add_argument("--gpus", type=int, default=1, help="K of --resources gpu=K for the estimate")
    a = p.parse_args(argv)
    if a.gpus < 1 or a.iterations < 1:
        raise ValueError("--gpus and --iterations must be >= 1")
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    from spp.nets.models import build_model
    from spp.tables.experiments import DATASET_SHAPES

    peak = peak_flops(device)
    peak_note = "fp32 matmul" if device.type == "cpu" else "fp32/TF32-default matmul"
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else
             f", {a.threads} thread(s)"))
    print(f"measured peak {peak / 1e9:.1f} GFLOP/s ({peak_note}, this run)")
    if device.type == "cuda":
        bf = peak_flops(device, torch.bfloat16)
        print(f"measured bf16 peak {bf / 1e9:.1f} GFLOP/s (this run)")
    runs = paper_training_runs(a.preset)
    hdr = (f"{'network':28s} {'dataset':14s} {'batch':>5s} {'runs':>5s} {'iters':>7s} "
           f"{'GFLOP/step':>10s} {'h@peak':>8s} {'it/s':>8s} {'%peak':>6s} {'est. h':>8s}")
    print(hdr)
    total_lb, total_est, longest, missing, total_flop = 0.0, 0.0, 0.0, [], 0.0
    for r in runs:
        shape, classes = DATASET_SHAPES[r["dataset"]]
        model = build_model(r["arch"], shape, classes, activation=r["activation"],
                            width=r["width"])
        fl = step_flops(model, r["batch_size"], shape, classes)
        lb = r["runs"] * r["iterations"] * fl / peak / 3600
        total_lb += lb
        total_flop += r["runs"] * r["iterations"] * fl
        name = f"{r['arch']} {r['activation'] or ''} w{r['width']:g}".replace("  ", " ")
        its = None
        mlp_like = r["arch"].startswith("mlp") or r["arch"] == "lenet300"
        if a.measure and (device.type == "cuda" or mlp_like or a.measure_all):
            its = engine_its(r["arch"], r["activation"], r["width"], r["dataset"],
                             r["batch_size"], device, a.iterations, a.fast)
        if its:
            est = r["runs"] * r["iterations"] / its / 3600
            total_est += est
            longest = max(longest, r["iterations"] / its / 3600)
            tail = f"{its:8.1f} {100 * its * fl / peak:5.1f}% {est:8.1f}"
        else:
            missing.append(name)
            tail = f"{'-':>8s} {'-':>6s} {'-':>8s}"
        print(f"{name:28s} {r['dataset']:14s} {r['batch_size']:5d} {r['runs']:5d} "
              f"{r['iterations']:7d} {fl / 1e9:10.3f} {lb:8.2f} {tail}", flush=True)
    n_runs = sum(r["runs"] for r in runs)
    print(f"\n{n_runs} training runs, {total_flop / 1e18:.2f} EFLOP counted in all; lower bound "
          f"at 100% of the measured peak: {total_lb:.1f} h on one device")
    if total_est:
        k = a.gpus
        which = "all networks" if not missing else f"the {len(runs) - len(missing)} measured ones"
        print(f"estimate from measured it/s ({which}; sum of runs x iterations / it/s): "
              f"{total_est:.1f} h "
              f"on one {device.type} device; with --resources gpu={k}: about "
              f"{max(total_est / k, longest):.1f} h (independent jobs, bounded below by the "
              f"longest single run, {longest:.1f} h)")
    if missing:
        print(f"not measured ({len(missing)}): {', '.join(missing)}", file=sys.stderr)


if __name__ == "__main__":
    main()
