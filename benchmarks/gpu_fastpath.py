"""GPU fast path: ResNet-32, CIFAR-shaped data, batch 128: engine vs a plain loop, and bf16 vs fp32.

Needs CUDA; on a machine without it, it prints one line saying so and exits 0. In one run:

1. Throughput, ResNet-32 on 50k CIFAR-shaped random images (uint8, 3x32x32), batch 128, flip +
   4-px translation augmentation in all three:
   - plain loop: the usual reference code. A ``Dataset`` whose ``__getitem__`` converts one image
     to fp32, normalises it, pads, crops and flips it on the CPU; a ``DataLoader`` (shuffle,
     ``--workers`` worker processes) collates; each batch is copied to the GPU; fp32; ``.item()``
     every step.
   - engine fp32: ``spp.train.training.train`` (data on the GPU, batched on-device augmentation, no
     per-step host sync), fp32.
   - engine + fast path: the same with ``spp.train.fastpath.FastPath.for_device`` (bf16 autocast,
     channels-last, cuDNN autotuning, TF32; ``--compile`` adds torch.compile).
   Printed: it/s of each, ratios against the plain loop, and the fraction of the measured peak
   (counted FLOPs per step x it/s / a large matmul's FLOP/s in fp32 resp. bf16, this run).
2. What bf16 changes: ResNet-32 on the shipped CIFAR-10 subset (real images), ``--quality-steps``
   iterations, trained three times with the same protocol: fp32 seed 0, fp32 seed 1, and the fast
   path (bf16) seed 0 (same init, data order and augmentation draws as fp32 seed 0). Printed: final
   train loss and test error of each, the bf16-vs-fp32 difference, and the seed-to-seed difference
   in fp32 for scale. bf16 "does not change results materially" when its difference is well
   inside the seed-to-seed spread.

    python benchmarks/gpu_fastpath.py                      # 300 timed its, 2000 quality its
    python benchmarks/gpu_fastpath.py --compile --iterations 500 --workers 8
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from spp.data import datasets as data
from spp.nets.initializers import initialize
from spp.nets.models import build_model
from spp.train.fastpath import FastPath
from spp.train.training import TrainConfig, train
from torch.utils.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from flops import peak_flops, step_flops  # noqa: E402
from train_throughput import cifar_shaped  # noqa: E402


class AugmentedImages(Dataset):
    """Per-sample CPU fp32 normalise + pad/crop + flip, as typical reference code does."""

    def __init__(self, x_uint8, y, mean, std, pad=4):
        self.x, self.y, self.pad = x_uint8, y, pad
        self.mean = mean.float().view(-1, 1, 1)
        self.std = std.float().view(-1, 1, 1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = (self.x[i].float() / 255.0 - self.mean) / self.std
        p = self.pad
        img = F.pad(img, (p, p, p, p))
        top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
        img = img[:, top:top + self.x.shape[2], left:left + self.x.shape[3]]
        if torch.rand(()) < 0.5:
            img = img.flip(2)
        return img, self.y[i]


def plain_loop(model, ds, iterations, batch_size, device, workers):
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    it = 0

    def run(n):
        nonlocal it
        done = 0
        while done < n:
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss.item()
                done += 1
                if done == n:
                    return

    run(10)  # warm-up: workers started, cuDNN heuristics chosen
    torch.cuda.synchronize()
    t = time.perf_counter()
    run(iterations)
    torch.cuda.synchronize()
    return iterations / (time.perf_counter() - t)


def engine_its(model, splits, iterations, batch_size, device, fast):
    kwargs = {"fast": fast} if fast is not None else {}
    warm = TrainConfig(iterations=20, batch_size=batch_size, augment=True, log_every=20,
                       eval_every=20)
    train(copy.deepcopy(model), None, splits, warm, device, log=lambda _: None, **kwargs)
    lines = []
    cfg = TrainConfig(iterations=iterations, batch_size=batch_size, augment=True,
                      eval_every=iterations, log_every=iterations)
    train(copy.deepcopy(model), None, splits, cfg, device, log=lines.append, **kwargs)
    rate = [ln for ln in lines if "it/s" in ln][-1]
    return float(rate.rsplit(" it/s", 1)[0].rsplit(" ", 1)[-1])


def cifar_subset() -> data.DataSplits:
    with tempfile.TemporaryDirectory() as tmp:
        raw = data.fetch("cifar10", Path(tmp) / "raw", source="subset")
        data.prepare("cifar10", raw, Path(tmp) / "cifar10.pt")
        return data.load(Path(tmp) / "cifar10.pt")


@contextlib.contextmanager
def fp32_reference(device):
    """True fp32 for a reference run: no TF32 in matmuls or convolutions (cuDNN allows TF32 by
    default), restored afterwards. No-op on CPU."""
    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def quality_runs(steps, device, variants, batch_size=128, arch="resnet32", width=1.0,
                 splits=None, log=print, evals=6) -> dict:
    """``arch`` trained on the shipped CIFAR-10 subset once per variant ``(label, seed, fast)``
    (``fast`` None: the fp32 reference; TF32 stays off unless ``fast.tf32``) with the paper's
    protocol shortened to ``steps`` (lr decay at half, augmentation on): the same seed means
    the same init, data order and augmentation draws. Returns ``{label: {"seed", "train_loss",
    "test_error", "history", "seconds"}}`` (loss and error of the last of ``evals``
    evaluations)."""
    splits = (splits if splits is not None else cifar_subset()).to(device)
    out = {}
    for label, seed, f in variants:
        model = initialize(build_model(arch, (3, 32, 32), 10, width=width), "vs-he", seed=seed)
        cfg = TrainConfig(iterations=steps, batch_size=batch_size, augment=True, seed=seed,
                          eval_every=max(1, steps // evals), log_every=max(1, steps // evals),
                          lr_decay_every=max(1, steps // 2))
        kwargs = {"fast": f} if f is not None else {}
        t = time.perf_counter()
        reference = f is None or not f.tf32  # no TF32 unless the variant asks for it
        with fp32_reference(device) if reference else contextlib.nullcontext():
            res = train(model, None, splits, cfg, device, log=lambda _: None, **kwargs)
        last = res.history[-1]
        out[label] = {"seed": seed, "train_loss": last["train_loss"],
                      "test_error": last["test_error"], "history": res.history,
                      "seconds": time.perf_counter() - t}
        log(f"  {label:16s} seed {seed}: train loss {last['train_loss']:.4f}  test error "
            f"{last['test_error']:.2f}%  ({out[label]['seconds']:.1f} s)")
    return out


def quality(steps, device, fast, batch_size=128):
    """(train loss, test error) of fp32 seed 0, fp32 seed 1, fast-path seed 0."""
    runs = quality_runs(steps, device, [("fp32 seed 0", 0, None), ("fp32 seed 1", 1, None),
                                        ("fast seed 0", 0, fast)], batch_size)
    out = {k: (v["train_loss"], v["test_error"]) for k, v in runs.items()}
    (l0, e0), (l1, e1), (lf, ef) = out["fp32 seed 0"], out["fp32 seed 1"], out["fast seed 0"]
    print(f"  bf16 - fp32 (same seed): loss {lf - l0:+.4f}, test error {ef - e0:+.2f} points; "
          f"fp32 seed 1 - seed 0: loss {l1 - l0:+.4f}, test error {e1 - e0:+.2f} points")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--quality-steps", type=int, default=2000)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the plain loop")
    p.add_argument("--compile", action="store_true", help="add torch.compile to the fast path")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_fastpath: skipped (CUDA not available on this machine)")
        return 0
    device = torch.device("cuda")
    wired = "fast" in inspect.signature(train).parameters
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"plain-loop workers {a.workers}", flush=True)
    shape, bsz = (3, 32, 32), 128
    model = initialize(build_model("resnet32", shape, 10), "vs-he", seed=0)
    splits = cifar_shaped().to(device)
    ds = AugmentedImages(splits.x["train"].cpu(), splits.y["train"].cpu(), splits.mean,
                         splits.std)
    fast = FastPath.for_device(device, compile=a.compile)

    plain = plain_loop(copy.deepcopy(model).to(device), ds, a.iterations, bsz, device, a.workers)
    eng = engine_its(model, splits, a.iterations, bsz, device, None)
    fst = engine_its(model, splits, a.iterations, bsz, device, fast) if wired else None
    fl = step_flops(model, bsz, shape)
    peak32, peak16 = peak_flops(device, torch.float32), peak_flops(device, torch.bfloat16)
    print(f"\nresnet32, CIFAR-shaped, batch {bsz}, {a.iterations} timed iterations; counted "
          f"{fl / 1e9:.1f} GFLOP/step; peak fp32 {peak32 / 1e12:.1f}, bf16 "
          f"{peak16 / 1e12:.1f} TFLOP/s (measured in this run)")
    print(f"  plain DataLoader loop, fp32   {plain:8.1f} it/s   1.00x   "
          f"{100 * plain * fl / peak32:5.1f}% of fp32 peak")
    print(f"  engine, fp32                  {eng:8.1f} it/s  {eng / plain:5.2f}x   "
          f"{100 * eng * fl / peak32:5.1f}% of fp32 peak")
    if fst is not None:
        print(f"  engine + fast path ({'bf16' if fast.bf16 else 'fp32'}"
              f"{', compile' if fast.compile else ''})  {fst:8.1f} it/s  {fst / plain:5.2f}x   "
              f"{100 * fst * fl / peak16:5.1f}% of bf16 peak")
        print(f"\nbf16 vs fp32 after {a.quality_steps} iterations on the shipped CIFAR-10 subset:")
        quality(a.quality_steps, device, fast)
    else:
        print("  engine + fast path: not measured: spp.train.training.train has no `fast` argument "
              "yet "
              "(wire spp.train.fastpath into it, see benchmarks/README.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
