"""Training throughput: the spp engine against a plain PyTorch loop, in the same run.

The plain loop is what most reference code does: a DataLoader over a TensorDataset of
pre-normalised float images (shuffle=True), batches moved to the device each step, and
``loss.item()`` every step. Both train the same model (same init) on the same data for the same
number of iterations with the same optimiser, without augmentation; the engine's time includes its
evaluation at the end (on small val/test splits). Ratios matter, not absolute figures: the machine
is often shared.

    python benchmarks/train_throughput.py                 # MLP on MNIST (CPU), ResNet-32 on GPU
    python benchmarks/train_throughput.py --iterations 2000 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from spp.data import datasets as data
from spp.nets.models import build_model
from spp.train.training import TrainConfig, train
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[1]


def plain_loop(model, x, y, iterations, batch_size, device, seed=0):
    """The baseline: DataLoader + per-step host sync."""
    torch.manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    it, losses = 0, []
    while it < iterations:
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            it += 1
            if it == iterations:
                break
    return losses


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def compare(label, model, splits, iterations, batch_size, device, repeats=2):
    """Best-of-``repeats`` it/s of both loops, alternating, after a warm-up of each."""
    device = torch.device(device)
    splits = splits.to(device)
    x_cpu = splits.normalize(splits.x["train"]).cpu()  # the plain loop's pre-normalised floats
    y_cpu = splits.y["train"].cpu()
    cfg = TrainConfig(iterations=iterations, batch_size=batch_size, eval_every=iterations,
                      log_every=iterations, eval_batch_size=1000)
    warm = TrainConfig(iterations=20, batch_size=batch_size, eval_every=20, log_every=20)

    def run_engine(c):
        m = copy.deepcopy(model).to(device)
        train(m, None, splits, c, device, log=lambda _: None)

    def run_plain(n):
        m = copy.deepcopy(model).to(device)
        plain_loop(m, x_cpu, y_cpu, n, batch_size, device)

    run_engine(warm)
    run_plain(20)
    engine, plain = [], []
    for _ in range(repeats):
        plain.append(iterations / timed(lambda: run_plain(iterations), device))
        engine.append(iterations / timed(lambda: run_engine(cfg), device))
    e, p = max(engine), max(plain)
    print(f"{label}: engine {e:8.1f} it/s | plain DataLoader loop {p:8.1f} it/s | "
          f"ratio {e / p:5.2f}x  ({iterations} iterations, batch {batch_size}, {device})",
          flush=True)
    return e, p


def _with_small_eval(ds: data.DataSplits, n_eval: int = 1000) -> data.DataSplits:
    """Same training data, evaluation splits cut down so the timing is about training."""
    return data.DataSplits(ds.name, ds.num_classes, ds.input_shape, ds.mean, ds.std,
                           {"train": ds.x["train"], "val": ds.x["val"][:n_eval],
                            "test": ds.x["test"][:n_eval]},
                           {"train": ds.y["train"], "val": ds.y["val"][:n_eval],
                            "test": ds.y["test"][:n_eval]})


def mnist_splits(shared: Path | None) -> tuple[data.DataSplits, str]:
    with tempfile.TemporaryDirectory() as tmp:
        if shared is not None and (shared / "mnist").is_dir():
            raw, what = data.fetch("mnist", Path(tmp) / "raw", mirror=shared), "MNIST (full)"
        else:
            raw = data.fetch("mnist", Path(tmp) / "raw", source="subset")
            what = "MNIST (shipped subset)"
        data.prepare("mnist", raw, Path(tmp) / "mnist.pt")
        return _with_small_eval(data.load(Path(tmp) / "mnist.pt")), what


def cifar_shaped(n: int = 50_000, seed: int = 0) -> data.DataSplits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    return data.DataSplits("cifar-shaped", 10, (3, 32, 32), torch.full((3,), 0.5),
                           torch.full((3,), 0.29), {"train": x, "val": x[:1000], "test": x[:1000]},
                           {"train": y, "val": y[:1000], "test": y[:1000]})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--gpu-iterations", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with the original MNIST (else the shipped subset is used)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cpu = platform.processor() or platform.machine()
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {cpu}, "
          f"{a.threads} CPU thread(s)", flush=True)

    splits, what = mnist_splits(a.shared)
    model = build_model("mlp-7-tanh", (1, 28, 28), 10)
    compare(f"mlp-7-tanh on {what}, CPU", model, splits, a.iterations, 100, "cpu")

    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}", flush=True)
        resnet = build_model("resnet32", (3, 32, 32), 10)
        compare("resnet32 on CIFAR-shaped random data (50k), GPU", resnet, cifar_shaped(),
                a.gpu_iterations, 128, "cuda")
    else:
        print("resnet32 on GPU: skipped (CUDA not available)", flush=True)


if __name__ == "__main__":
    main()
