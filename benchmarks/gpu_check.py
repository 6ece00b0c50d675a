"""GPU readiness: every GPU path of the project checked and timed in one command.

Run through ``benchmarks/gpu_check.sh`` (it installs Snakemake offline from ``.gpu_carry/`` when
the machine lacks it, and keeps a log); the parts, in order, each with its own time limit, each
reporting its own failure while the script goes on:

1. **tests**: the CUDA-only tests (``pytest -m cuda``) and the whole unit suite
   (``pytest -m "not slow"``) with ``SPP_TEST_DEVICE`` set to the device, so the tests that take
   the ``device`` fixture run on it (tests/conftest.py). Output: ``pytest.log``.
2. **numerics** of the fast path: ResNet-32 on the shipped CIFAR-10 subset
   (``gpu_fastpath.quality_runs``: same seed = same init, data order and augmentation draws):
   fp32 (TF32 off) for several seeds, bf16 + channels-last (+ cuDNN autotuning, TF32), the same
   with the CUDA graph, fp32 with the CUDA graph, and bf16 + channels-last + torch.compile in a
   subprocess given a minute to build. Training loss and test error after N steps against the
   fp32 seed-to-seed spread. Figure: ``numerics.png``.
3. **throughput** of every network the paper preset trains (``flops.trained_by_table`` and
   Frankle et al.'s section, read from config/paper.yaml), at its batch size, on synthetic data
   of its shape: the plain DataLoader fp32 loop (``train_throughput.plain_loop``), the engine
   (``spp.train.training.train``), the engine with the fast path and its CUDA graph, and stacked
   seeds (``spp.train.stacked``) for the MLP cells the workflow stacks; it/s and the fraction of a
   bf16 matmul peak measured in the same run (``flops.peak_flops``). An architecture the library
   does not know fails its row only. Figure: ``throughput.png``.
4. **GPU-hours** of the paper preset per table from those rates (``flops`` counts the runs):
   the plain loop, the workflow as it runs today (fp32 engine, MLP cells stacked), and with the
   fast path. Figure: ``gpu_hours.png``.
5. **snakemake**: one Table 2 cell (LDI, ResNet-32, CIFAR-10 subset, a few hundred iterations)
   through the workflow with ``--resources gpu=1``; its training job is sent SIGTERM once its
   first checkpoint exists, and the rerun must resume from it. Checks the device the rule chose
   (log and metrics.json), the logs, the checkpoint and the table. Output: ``snakemake.log``.

``summary.json`` holds every figure; the summary at the end of stdout repeats the key ones.

``--cpu-smoke``: every part on the CPU at toy size (a few steps, two networks, a narrow
network in Snakemake), in under two minutes on two cores: what CI runs
(tests/test_gpu_check.py) to prove the script works before a GPU is lent.

    bash benchmarks/gpu_check.sh                    # on the GPU machine; files to $OUT
    bash benchmarks/gpu_check.sh --cpu-smoke        # anywhere
    bash benchmarks/gpu_check.sh --parts 2,3        # some parts only
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

PARTS = {1: "tests", 2: "numerics", 3: "throughput", 4: "gpu-hours", 5: "snakemake"}
PRESET = REPO / "config" / "paper.yaml"


@dataclasses.dataclass(frozen=True)
class Settings:
    smoke: bool
    device: str
    limits: dict  # part number -> seconds
    # 1. tests
    cuda_tests_limit: int
    cuda_tests_paths: tuple
    suite_limit: int
    suite_paths: tuple
    xdist_workers: int
    # 2. numerics
    numerics_steps: int
    numerics_batch: int
    numerics_width: float
    fp32_seeds: tuple
    numerics_evals: int
    compile_build_s: float
    # 3. throughput
    target_s: float  # timed seconds of the slowest mode per network
    min_iters: int
    max_iters: int
    only_archs: tuple | None  # None: every network of the preset
    conv_width: float | None  # None: the preset's width
    max_batch: int | None
    stacked_seeds: int
    # 5. snakemake
    snk_iterations: int
    snk_batch: int
    snk_width: float
    snk_checkpoint_every: int
    snk_eval_every: int
    snk_scoring: dict
    snk_signal: dict
    snk_cores: int
    snk_target: str  # "table2": the table's CSV; "train": the cell's training folder


FULL = Settings(
    smoke=False, device="cuda", limits={1: 165, 2: 90, 3: 100, 4: 20, 5: 90},
    cuda_tests_limit=45, cuda_tests_paths=("tests",), suite_limit=115, suite_paths=("tests",),
    xdist_workers=8,
    numerics_steps=500, numerics_batch=128, numerics_width=1.0, fp32_seeds=(0, 1, 2),
    numerics_evals=5, compile_build_s=60.0,
    target_s=0.8, min_iters=10, max_iters=3000, only_archs=None, conv_width=None,
    max_batch=None, stacked_seeds=10,
    snk_iterations=300, snk_batch=128, snk_width=1.0, snk_checkpoint_every=50, snk_eval_every=100,
    snk_scoring={"batch_size": 100, "max_examples": 500},
    snk_signal={"batch_size": 50, "max_examples": 50}, snk_cores=8, snk_target="table2",
)
# Smoke limits are 3-4x what an idle 2-core machine needs (about 90 s in all): on a loaded one
# (CI beside other jobs) a tight limit skipped variants and failed the smoke test.
SMOKE = Settings(
    smoke=True, device="cpu", limits={1: 150, 2: 120, 3: 120, 4: 60, 5: 240},
    cuda_tests_limit=60, cuda_tests_paths=("tests/test_fastpath.py", "tests/test_graph_step.py"),
    suite_limit=60, suite_paths=("tests/test_fastpath.py",), xdist_workers=0,
    numerics_steps=4, numerics_batch=16, numerics_width=0.25, fp32_seeds=(0, 1),
    numerics_evals=1, compile_build_s=30.0,
    target_s=0.05, min_iters=2, max_iters=3, only_archs=("mlp-7-tanh", "resnet32"),
    conv_width=0.25, max_batch=32,
    stacked_seeds=2,
    snk_iterations=16, snk_batch=16, snk_width=0.25, snk_checkpoint_every=4, snk_eval_every=16,
    snk_scoring={"batch_size": 16, "max_examples": 32},
    snk_signal={"batch_size": 8, "max_examples": 8}, snk_cores=2, snk_target="train",
)


def say(line: str = "") -> None:
    print(line, flush=True)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class PartTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise PartTimeout in this (main) thread after ``seconds``."""

    def handler(signum, frame):
        raise PartTimeout(f"time limit of {seconds:.0f} s reached")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Deadline:
    """A part's soft deadline: what is left, and whether another piece of ``cost`` s fits."""

    def __init__(self, seconds: float, margin: float = 3.0):
        self.end = time.monotonic() + seconds - margin

    def left(self) -> float:
        return self.end - time.monotonic()

    def fits(self, cost: float) -> bool:
        return self.left() > cost


@dataclasses.dataclass
class Part:
    number: int
    name: str
    ok: bool = False
    seconds: float = 0.0
    lines: list = dataclasses.field(default_factory=list)
    error: str | None = None
    data: dict = dataclasses.field(default_factory=dict)

    def add(self, line: str) -> None:
        self.lines.append(line)
        say(f"  {line}")


def pythonpath() -> str:
    parts = [str(REPO / "workflow"), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    return ":".join(dict.fromkeys(parts))


def fmt_rate(x) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


# ------------------------------------------------------------------------- 1. tests

_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def pytest_counts(text: str) -> dict:
    """The counts of pytest's closing line."""
    for line in reversed(text.strip().splitlines()):
        found = _COUNTS.findall(line)
        if found and (" in " in line or line.startswith("=")):
            return {kind.rstrip("s") if kind.startswith("error") else kind: int(n)
                    for n, kind in found}
    return {}


def part_tests(part: Part, ctx: dict) -> None:
    s = ctx["settings"]
    env = {**os.environ, "SPP_TEST_DEVICE": s.device, "PYTHONPATH": pythonpath()}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
            "--ignore=tests/test_gpu_check.py"]
    xdist = []
    if s.xdist_workers and importlib.util.find_spec("xdist") is not None:
        xdist = ["-n", str(s.xdist_workers), "--dist", "loadfile"]
    runs = [("CUDA-only tests", [*base, "-m", "cuda", *s.cuda_tests_paths], s.cuda_tests_limit),
            ("unit suite", [*base, *xdist, "-m", "not slow and not cuda", *s.suite_paths],
             s.suite_limit)]
    log, ok = [], True
    for label, cmd, limit in runs:
        t = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=limit)
            rc, text = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            out = [x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
                   for x in (e.stdout, e.stderr)]
            rc, text = f"killed at its {limit} s limit", "".join(out)
        secs = time.perf_counter() - t
        counts = pytest_counts(text)
        shown = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no pytest summary"
        workers = f", xdist {s.xdist_workers} workers" if xdist and "suite" in label else ""
        part.add(f"{label} on {s.device}: {shown} (exit {rc}, {secs:.0f} s{workers})")
        for line in text.splitlines():
            if line.startswith(("FAILED ", "ERROR ")):
                part.add(f"  {line[:200]}")
        part.data[label] = {"exit": rc, "counts": counts, "seconds": secs, "command": cmd}
        ok = ok and rc == 0 and counts.get("passed", 0) + counts.get("skipped", 0) > 0
        log.append(f"===== {label}: {' '.join(cmd)}\n===== exit {rc}, {secs:.1f} s\n{text}\n")
    (ctx["out"] / "pytest.log").write_text("".join(log))
    part.ok = ok


# ------------------------------------------------------------------------- 2. numerics

def _fast_variants():
    from spp.train.fastpath import FastPath

    bf16 = FastPath(bf16=True, channels_last=True, cudnn_benchmark=True, tf32=True)
    return {"bf16+cl": bf16, "bf16+cl+graph": dataclasses.replace(bf16, cuda_graph=True),
            "fp32+graph": FastPath(cuda_graph=True),
            "bf16+cl+compile": dataclasses.replace(bf16, compile=True)}


def _numerics_splits(path, test_images: int | None):
    """The prepared CIFAR-10 subset; ``test_images``: only the first ones of the test split."""
    from spp.data import datasets as data

    splits = data.load(path)
    if test_images:
        splits = dataclasses.replace(splits,
                                     x={**splits.x, "test": splits.x["test"][:test_images]},
                                     y={**splits.y, "test": splits.y["test"][:test_images]})
    return splits


def _compile_variant(args) -> int:
    """Subprocess of part 2: the compile variant, saying when it has built."""
    from gpu_fastpath import quality_runs

    fast = _fast_variants()["bf16+cl+compile"]
    splits = _numerics_splits(args.splits, args.test_images)  # what the parent trains on
    torch.set_num_threads(args.threads)  # the parent's: the same float reductions
    t = time.perf_counter()
    if torch.device(args.device).type == "cuda":  # on CPU torch.compile is not used (fastpath)
        # two steps on a throwaway model compile forward and backward; the run below reuses them
        quality_runs(2, args.device, [("build", 0, fast)], args.batch, width=args.width,
                     splits=splits, log=lambda _: None, evals=1)
    say(f"BUILT {time.perf_counter() - t:.1f}")
    runs = quality_runs(args.steps, args.device, [("bf16+cl+compile", 0, fast)], args.batch,
                        width=args.width, splits=splits, log=lambda _: None, evals=args.evals)
    Path(args.result).write_text(json.dumps(runs["bf16+cl+compile"]))
    return 0


class _Streamed:
    """A subprocess whose output lines are collected by a thread (to watch for a marker)."""

    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def seen(self, prefix: str):
        return next((ln for ln in self.lines if ln.startswith(prefix)), None)

    def kill(self):
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def part_numerics(part: Part, ctx: dict) -> None:
    from gpu_fastpath import quality_runs
    from spp.data import datasets as data

    s, out = ctx["settings"], ctx["out"]
    device, steps, bsz, width = s.device, s.numerics_steps, s.numerics_batch, s.numerics_width
    deadline = Deadline(s.limits[2])
    part.add(f"resnet32 (width {width:g}) on the shipped CIFAR-10 subset, batch {bsz}, {steps} "
             f"steps, lr decay at {max(1, steps // 2)}, augmentation on, on {device}")
    variants = _fast_variants()
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_numerics_"))
    result_file, splits_file = tmp / "compile.json", tmp / "cifar10.pt"
    raw = data.fetch("cifar10", tmp / "raw", source="subset")
    data.prepare("cifar10", raw, splits_file)
    test_images = 100 if s.smoke else None  # smoke: evaluation is most of a toy run's time
    splits = _numerics_splits(splits_file, test_images)
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    compiling = _Streamed([sys.executable, str(Path(__file__)), "--compile-variant",
                           "--device", device, "--steps", str(steps), "--batch", str(bsz),
                           "--width", str(width), "--evals", str(s.numerics_evals),
                           "--splits", str(splits_file), "--test-images", str(test_images or 0),
                           "--threads", str(torch.get_num_threads()),
                           "--result", str(result_file)], env)
    t_compile = time.monotonic()
    order = [(f"fp32 seed {k}", k, None) for k in s.fp32_seeds[:2]]
    order += [(name, 0, variants[name]) for name in ("bf16+cl", "bf16+cl+graph", "fp32+graph")]
    order += [(f"fp32 seed {k}", k, None) for k in s.fp32_seeds[2:]]
    runs, longest = {}, 0.0
    try:
        for label, seed, fast in order:
            if runs and not deadline.fits(1.3 * longest + 5):
                part.add(f"{label}: skipped, the part's time is nearly up")
                continue
            try:
                r = quality_runs(steps, device, [(label, seed, fast)], bsz, width=width,
                                 splits=splits, log=part.add, evals=s.numerics_evals)
                runs.update(r)
                longest = max(longest, r[label]["seconds"])
            except PartTimeout:
                raise
            except Exception as e:  # noqa: BLE001 - reported, the other variants go on
                part.add(f"{label}: FAILED {type(e).__name__}: {e}")
                runs[label] = {"error": f"{type(e).__name__}: {e}"}
        # the compile variant: a minute to build, then its run
        compile_note = None
        while compiling.proc.poll() is None and not compiling.seen("BUILT"):
            if time.monotonic() - t_compile > s.compile_build_s or not deadline.fits(2):
                compile_note = f"did not build within {s.compile_build_s:.0f} s: not measured"
                break
            time.sleep(0.2)
        if compile_note is None:
            left = max(1.0, deadline.left())
            try:
                compiling.proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                compile_note = "built, but its run did not finish in the part's time"
        compiling.kill()
        compiling.thread.join(timeout=5)
        built = compiling.seen("BUILT")
        if compile_note is None and compiling.proc.returncode == 0:
            runs["bf16+cl+compile"] = json.loads(result_file.read_text())
            runs["bf16+cl+compile"]["build_seconds"] = float(built.split()[1])
            c = runs["bf16+cl+compile"]
            part.add(f"  {'bf16+cl+compile':16s} seed 0: train loss {c['train_loss']:.4f}  test "
                     f"error {c['test_error']:.2f}%  (built in {c['build_seconds']:.0f} s, "
                     f"{c['seconds']:.1f} s in all)")
        else:
            if compile_note is None:
                compile_note = (f"FAILED (exit {compiling.proc.returncode}): "
                                + " | ".join(compiling.lines[-3:]))
            part.add(f"bf16+cl+compile: {compile_note}")
            runs["bf16+cl+compile"] = {"error": compile_note}
    finally:
        compiling.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    fp32 = {k: v for k, v in runs.items() if k.startswith("fp32 seed") and "error" not in v}
    part.data.update({"runs": runs, "steps": steps, "batch": bsz, "width": width})
    if len(fp32) < 2 or "fp32 seed 0" not in fp32:
        part.add("FAILED: fewer than two fp32 seeds trained: no spread to compare against")
        part.ok = False
        return
    spread = {q: max(v[q] for v in fp32.values()) - min(v[q] for v in fp32.values())
              for q in ("train_loss", "test_error")}
    ref = fp32["fp32 seed 0"]
    part.add(f"fp32 seed-to-seed spread over {len(fp32)} seeds (max - min): train loss "
             f"{spread['train_loss']:.4f}, test error {spread['test_error']:.2f} points")
    verdicts = {}
    for label in ("bf16+cl", "bf16+cl+graph", "fp32+graph", "bf16+cl+compile"):
        v = runs.get(label, {})
        if "error" in v or not v:
            verdicts[label] = None
            continue
        d = {q: v[q] - ref[q] for q in ("train_loss", "test_error")}
        inside = all(abs(d[q]) <= spread[q] for q in d)
        verdicts[label] = {"d_train_loss": d["train_loss"], "d_test_error": d["test_error"],
                           "inside_spread": inside}
        part.add(f"{label:16s} - fp32 seed 0: train loss {d['train_loss']:+.4f}, test error "
                 f"{d['test_error']:+.2f} points: {'inside' if inside else 'OUTSIDE'} the fp32 "
                 "spread")
    part.data.update({"spread": spread, "verdicts": verdicts})
    finite = all(math.isfinite(v["train_loss"]) for k, v in runs.items() if "error" not in v)
    failed = [k for k, v in runs.items() if "error" in v and k != "bf16+cl+compile"]
    _numerics_figure(runs, spread, out / "numerics.png", ctx)
    part.ok = finite and not failed


def _numerics_figure(runs: dict, spread: dict, path: Path, ctx: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = {k: v for k, v in runs.items() if "error" not in v}
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, v in ok.items():
        its = [r["iteration"] for r in v["history"]]
        a.plot(its, [r["train_loss"] for r in v["history"]], marker="o", ms=3, label=label,
               ls="-" if label.startswith("fp32 seed") else "--")
    a.set(xlabel="iteration", ylabel="training loss (mean since the last evaluation)",
          yscale="log", title="training loss")
    a.legend(fontsize=8)
    fp32 = [v["test_error"] for k, v in ok.items() if k.startswith("fp32 seed")]
    labels = list(ok)
    b.axhspan(min(fp32), max(fp32), color="0.85", label="fp32 seeds: min-max")
    b.scatter(range(len(labels)), [ok[k]["test_error"] for k in labels],
              c=["C0" if k.startswith("fp32 seed") else "C3" for k in labels], zorder=3)
    b.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    b.set(ylabel="test error after the last step (%)", title="final test error")
    b.legend(fontsize=8)
    fig.suptitle(f"gpu_check part 2: fast-path numerics, resnet32 on the CIFAR-10 subset "
                 f"({ctx['device_name']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- 3. throughput

def networks(cfg: dict) -> list[dict]:
    """Every distinct network the preset trains, keyed by what sets a step's cost (arch, width,
    input shape, classes, batch); activations and datasets of one shape share a row."""
    import flops
    from spp.tables.experiments import DATASET_SHAPES

    rows = []
    for table, groups in flops.training_runs_by_table(cfg).items():
        rows += [{**g, "table": table} for g in groups]
    rows += [{**g, "table": "frankle"} for g in flops.frankle_training_runs(cfg)]
    nets: dict = {}
    for r in rows:
        shape, classes = DATASET_SHAPES[r["dataset"]]
        key = (r["arch"], float(r["width"]), tuple(shape), classes, int(r["batch_size"]))
        n = nets.setdefault(key, {"key": key, "arch": r["arch"], "width": float(r["width"]),
                                  "dataset": r["dataset"], "batch_size": int(r["batch_size"]),
                                  "activations": {}, "datasets": [], "tables": [],
                                  "recipe": r["recipe"]})
        n["activations"][r["activation"]] = n["activations"].get(r["activation"], 0) + r["runs"]
        for field, value in (("datasets", r["dataset"]), ("tables", r["table"])):
            if value not in n[field]:
                n[field].append(value)
    out = []
    for n in nets.values():
        n["activation"] = max(n["activations"], key=lambda a: n["activations"][a])
        w = f" w{n['width']:g}" if n["width"] != 1.0 else ""
        n["label"] = f"{n['arch']}{w} {'/'.join(n['datasets'])} b{n['batch_size']}"
        out.append(n)
    return out


def _is_mlp(model) -> bool:
    from spp.nets.models import MLP

    return isinstance(model, MLP)


def measure_network(net: dict, s: Settings, peak: float) -> dict:
    """it/s of the plain loop, the engine, the engine + fast path (+ CUDA graph), and stacked
    seeds for an MLP; the fraction of ``peak`` each reaches."""
    import flops
    from spp.nets.models import build_model
    from spp.tables.experiments import DATASET_SHAPES
    from spp.train.fastpath import FastPath
    from spp.train.stacked import train_stacked
    from spp.train.training import TrainConfig, train
    from stacked_seeds import _logged_rate
    from train_throughput import plain_loop

    device = torch.device(s.device)
    shape, classes = DATASET_SHAPES[net["dataset"]]
    model = build_model(net["arch"], shape, classes, activation=net["activation"],
                        width=net["width"])
    mlp = _is_mlp(model)
    bsz = net["batch_size"]
    if s.smoke and not mlp and s.conv_width is not None:  # toy size for the smoke run
        model = build_model(net["arch"], shape, classes, activation=net["activation"],
                            width=s.conv_width)
    if s.max_batch:
        bsz = min(bsz, s.max_batch)
    recipe = net["recipe"]
    data = flops.synthetic_splits(net["dataset"], max(4 * bsz, 256 if s.smoke else 1024),
                                  device)
    label = net["label"]
    narrowed = s.smoke and not mlp and s.conv_width is not None
    if bsz != net["batch_size"] or narrowed:  # say what was measured instead
        label += f" (as b{bsz}{f' w{s.conv_width:g}' if narrowed else ''})"
    row = {"label": label, "arch": net["arch"], "batch_size": bsz, "mlp": mlp,
           "gflop_per_step": flops.step_flops(model, bsz, shape, classes) / 1e9, "errors": {}}
    fl = row["gflop_per_step"] * 1e9

    # plain DataLoader loop, fp32: calibrate, then time
    x_cpu, y_cpu = data.normalize(data.x["train"]).cpu(), data.y["train"].cpu()
    m = copy.deepcopy(model).to(device)
    t = time.perf_counter()
    plain_loop(m, x_cpu, y_cpu, max(2, s.min_iters // 2), bsz, device)
    sync(device)
    guess = max(2, s.min_iters // 2) / (time.perf_counter() - t)
    n = int(min(max(guess * s.target_s, s.min_iters), s.max_iters))
    t = time.perf_counter()
    plain_loop(m, x_cpu, y_cpu, n, bsz, device)
    sync(device)
    row["plain"] = n / (time.perf_counter() - t)
    del m

    w = int(min(max(row["plain"] * s.target_s, s.min_iters), s.max_iters))
    cfg = TrainConfig(iterations=2 * w, batch_size=bsz, lr=0.01, log_every=w, eval_every=2 * w,
                      augment=bool(recipe.get("augment", False)),
                      augmentation=recipe.get("augmentation", "translate"),
                      translate_px=int(recipe.get("translate_px", 4)), eval_batch_size=100)
    row["timed_iterations"] = w
    graph = dataclasses.replace(FastPath.for_device(device), cuda_graph=True)

    def engine(fast):
        lines = []
        train(copy.deepcopy(model), None, data, cfg, device, log=lines.append, fast=fast)
        return _logged_rate(lines)  # the second half: after warm-up and capture

    for mode, fn in (("engine", lambda: engine(None)), ("fast", lambda: engine(graph))):
        try:
            row[mode] = fn()
        except PartTimeout:
            raise
        except Exception as e:  # noqa: BLE001 - that mode fails, the row goes on
            row[mode], row["errors"][mode] = None, f"{type(e).__name__}: {e}"
    row["stacked"] = None
    if mlp:
        try:
            lines, k = [], s.stacked_seeds
            train_stacked([copy.deepcopy(model) for _ in range(k)], [None] * k, data, cfg,
                          list(range(k)), device, log=lines.append)
            row["stacked"] = _logged_rate(lines) * k  # seed-iterations per second
            row["stacked_seeds"] = k
        except PartTimeout:
            raise
        except Exception as e:  # noqa: BLE001
            row["errors"]["stacked"] = f"{type(e).__name__}: {e}"
    for mode in ("plain", "engine", "fast", "stacked"):
        r = row.get(mode)
        row[f"{mode}_peak_fraction"] = r * fl / peak if r else None
    return row


def part_throughput(part: Part, ctx: dict) -> None:
    import flops

    s = ctx["settings"]
    device = torch.device(s.device)
    deadline = Deadline(s.limits[3])
    cfg = ctx.setdefault("cfg", flops.load_preset(PRESET))
    nets = networks(cfg)
    if s.only_archs is not None:  # smoke: a network or two
        nets = [n for n in nets if n["arch"] in s.only_archs and n["width"] == 1.0]
    if device.type == "cuda":
        dtype, what = torch.bfloat16, "bf16"
        peak = flops.peak_flops(device, dtype, seconds=2.0)
    else:
        dtype, what = torch.float32, "fp32 (CPU)"
        peak = flops.peak_flops(device, dtype, size=256, seconds=0.3)
    part.add(f"measured peak: {peak / 1e12:.2f} TFLOP/s, {what} square matmuls, this run")
    part.add(f"{len(nets)} networks from {PRESET.relative_to(REPO)}; modes: plain DataLoader "
             "fp32 loop | engine fp32 | engine + fast path + CUDA graph | stacked seeds (MLPs)")
    hdr = (f"{'network':46s} {'GFLOP':>7s} {'plain':>7s} {'engine':>7s} {'fast':>7s} "
           f"{'stacked':>8s}  {'% of ' + what + ' peak (plain/engine/fast/stacked)'}")
    part.add(hdr)
    rows, longest = [], 0.0
    for net in nets:
        if rows and not deadline.fits(1.5 * longest + 3):
            rows.append({"label": net["label"], "key": net["key"], "failed": "not measured: "
                         "the part's time is nearly up"})
            part.add(f"{net['label']:46s} not measured: the part's time is nearly up")
            continue
        t = time.perf_counter()
        try:
            row = measure_network(net, s, peak)
        except PartTimeout:
            raise
        except Exception as e:  # noqa: BLE001 - this row fails, the others go on
            row = {"label": net["label"], "failed": f"{type(e).__name__}: {e}"}
            part.add(f"{net['label']:46s} FAILED {row['failed'][:150]}")
        else:
            pct = "/".join("-" if row.get(f"{m}_peak_fraction") is None
                           else f"{100 * row[f'{m}_peak_fraction']:.1f}"
                           for m in ("plain", "engine", "fast", "stacked"))
            part.add(f"{row['label']:46s} {row['gflop_per_step']:7.2f} {fmt_rate(row['plain']):>7s}"
                     f" {fmt_rate(row['engine']):>7s} {fmt_rate(row['fast']):>7s} "
                     f"{fmt_rate(row['stacked']):>8s}  {pct}")
            for mode, err in row["errors"].items():
                part.add(f"  {mode}: FAILED {err[:150]}")
        longest = max(longest, time.perf_counter() - t)
        row.update({"key": net["key"], "tables": net["tables"], "seconds":
                    time.perf_counter() - t})
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    ctx["rates"] = {r["key"]: r for r in rows if "failed" not in r}
    part.data.update({"peak_flops": peak, "peak_dtype": what, "rows": rows})
    _throughput_figure(rows, ctx["out"] / "throughput.png", ctx)
    part.ok = bool(rows) and all("failed" not in r and not r["errors"] for r in rows)


def _throughput_figure(rows: list, path: Path, ctx: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if "failed" not in r]
    modes = (("plain", "plain DataLoader fp32"), ("engine", "engine fp32"),
             ("fast", "engine + fast path + graph"), ("stacked", "stacked seeds (seed-it/s)"))
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(good) + 3), 5))
    width = 0.2
    for i, (m, label) in enumerate(modes):
        xs = [j + (i - 1.5) * width for j, r in enumerate(good) if r.get(m)]
        ys = [r[m] for r in good if r.get(m)]
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks(range(len(good)), [r["label"] for r in good], rotation=35, ha="right",
                  fontsize=8)
    ax.set(yscale="log", ylabel="iterations per second",
           title=f"gpu_check part 3: training throughput per network ({ctx['device_name']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- 4. GPU-hours

HOUR_MODES = {
    "plain": "plain DataLoader fp32 loop",
    "workflow": "workflow today: engine fp32, MLP cells stacked",
    "fast": "engine + fast path + CUDA graph (MLP cells: the faster of that and stacking)",
}


def _rate(mode: str, r: dict, stack: bool) -> float | None:
    if mode == "plain":
        return r.get("plain")
    if mode == "workflow":
        return r.get("stacked") if (r.get("mlp") and stack and r.get("stacked")) else r.get(
            "engine")
    options = [r.get("fast"), r.get("stacked") if r.get("mlp") and stack else None]
    options = [x for x in options if x]
    return max(options) if options else None


def part_hours(part: Part, ctx: dict) -> None:
    import flops
    from spp.tables.experiments import DATASET_SHAPES

    rates = ctx.get("rates")
    if not rates:
        part.add("FAILED: no throughput measured (part 3) to estimate from")
        part.ok = False
        return
    cfg = ctx.setdefault("cfg", flops.load_preset(PRESET))
    stack = bool(cfg.get("train", {}).get("stack_seeds", False))
    tables = flops.training_runs_by_table(cfg)
    tables["frankle"] = flops.frankle_training_runs(cfg)
    tables["all tables (shared runs once)"] = flops.all_training_runs(cfg)

    def key(g):
        shape, classes = DATASET_SHAPES[g["dataset"]]
        return (g["arch"], float(g["width"]), tuple(shape), classes, int(g["batch_size"]))

    result, missing = {}, set()
    part.add(f"paper preset ({PRESET.relative_to(REPO)}), one {ctx['device_name']}; hours = "
             "sum of runs x iterations / it/s" + (" (smoke: rates of toy-size networks)"
                                                   if ctx["settings"].smoke else ""))
    part.add(f"{'table':32s} {'runs':>6s} " + " ".join(f"{m:>10s}" for m in HOUR_MODES)
             + "  (GPU-hours)")
    for table, groups in tables.items():
        runs = sum(g["runs"] for g in groups)
        hours, unmeasured = {}, []
        for mode in HOUR_MODES:
            total, counted = 0.0, 0
            for g in groups:
                r = rates.get(key(g))
                rate = _rate(mode, r, stack) if r else None
                if not rate:
                    unmeasured.append(f"{g['arch']} w{g['width']:g} {g['dataset']}")
                    continue
                total += g["runs"] * g["iterations"] / rate / 3600
                counted += 1
            hours[mode] = total if counted else None
        unmeasured = sorted(set(unmeasured))
        missing.update(unmeasured)
        result[table] = {"runs": runs, "hours": hours, "unmeasured": unmeasured}
        cells = " ".join(f"{'-':>10s}" if hours[m] is None else f"{hours[m]:10.1f}"
                         for m in HOUR_MODES)
        part.add(f"{table:32s} {runs:6d} {cells}"
                 + (f"  (without {len(unmeasured)} unmeasured networks)" if unmeasured else ""))
    for m, text in HOUR_MODES.items():
        part.add(f"  {m}: {text}")
    if missing and not ctx["settings"].smoke:
        part.add(f"not measured, left out: {', '.join(sorted(missing))}")
    part.data.update({"tables": result, "modes": HOUR_MODES})
    _hours_figure(result, ctx["out"] / "gpu_hours.png", ctx)
    part.ok = bool(result) and (ctx["settings"].smoke or not missing)


def _hours_figure(result: dict, path: Path, ctx: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result)
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(names) + 3))
    h = 0.27
    for i, m in enumerate(HOUR_MODES):  # a table with nothing measured gets no bar
        have = [(j, result[n]["hours"][m]) for j, n in enumerate(names)
                if result[n]["hours"][m]]
        ax.barh([j + (i - 1) * h for j, _ in have], [v for _, v in have], h,
                label=HOUR_MODES[m])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="GPU-hours on one device",
           title=f"gpu_check part 4: the paper preset's training time ({ctx['device_name']})")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- 5. snakemake

def _snakemake_config(s: Settings) -> dict:
    return {
        "preset": "gpucheck", "seeds": [0], "device": "auto", "gpu_per_job": 1,
        "data": {"source": "subset", "mirror": "data/subsets"},
        "scoring": dict(s.snk_scoring), "signal": dict(s.snk_signal),
        "training": {"cifar10": {
            "iterations": s.snk_iterations, "batch_size": s.snk_batch,
            "lr_decay_every": max(1, 2 * s.snk_iterations // 3),
            "eval_every": s.snk_eval_every, "augment": True,
            "checkpoint_every": s.snk_checkpoint_every}},
        "table2": {"rows": ["LDI"],
                   "columns": [{"name": "ResNet32", "arch": "resnet32", "width": s.snk_width,
                                "dataset": "cifar10"}],
                   "unsupervised_row": {"enabled": False, "columns": []}},
        "frankle": {"enabled": False},
        "figures": {"enabled": False, "training_curves": False},
    }


def _train_job_pids(results: Path) -> list[int]:
    """The running training jobs' PIDs, from their logs' first lines (every job logs its PID;
    jobs are forked from the workflow's job server, so no command line names train.py)."""
    from spp.jobs import logged_pid

    pids = []
    for log in sorted((results / "logs" / "train").glob("**/*.log")):
        pid = logged_pid(log)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):  # ended: not ours to signal
                os.kill(pid, 0)
                pids.append(pid)
    return pids


def part_snakemake(part: Part, ctx: dict) -> None:
    import yaml

    s, out = ctx["settings"], ctx["out"]
    deadline = Deadline(s.limits[5], margin=2)
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_snakemake_"))
    cfg_file = workdir / "gpucheck.yaml"
    cfg_file.write_text(yaml.safe_dump(_snakemake_config(s), sort_keys=False))
    target = "results/gpucheck/tables/table2.csv"
    if s.snk_target == "train":  # the cell's training folder alone (no signal stage, no table)
        import flops
        from spp.tables import experiments

        (row,) = experiments.expand(flops.load_preset(cfg_file))["table2"]
        target = row["runs"]["main"].stage_dir("results/gpucheck", "train")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(cfg_file),
           "--cores", str(s.snk_cores), "--resources", "gpu=1", "--", target]
    env = {**os.environ, "PYTHONPATH": pythonpath()}
    part.add(f"target {target} (LDI x ResNet-32, width {s.snk_width:g}), CIFAR-10 subset, "
             f"{s.snk_iterations} iterations, checkpoint every {s.snk_checkpoint_every}, "
             f"--resources gpu=1, in {workdir}")
    log_parts = []
    results = workdir / "results" / "gpucheck"

    # run 1: SIGTERM to the training job once it has checkpointed
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout), daemon=True)
    reader.start()
    killed, ckpt_seen = [], None
    try:
        while proc.poll() is None:
            if not deadline.fits(0):
                raise PartTimeout("snakemake run 1 did not finish in the part's time")
            if not killed:
                found = (sorted(results.glob("train/**/*checkpoint.ckpt")) if results.exists()
                         else [])  # written (atomically): not the writer's temporary file
                if found:
                    ckpt_seen = found[0]
                    killed = _train_job_pids(results)
                    for pid in killed:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(timeout=5)
        log_parts.append(f"===== run 1 (exit {proc.returncode}, {time.perf_counter() - t:.0f} s)"
                         f": {' '.join(cmd)}\n{''.join(chunks)}")
        (out / "snakemake.log").write_text("\n".join(log_parts))
    first = "".join(chunks)
    checks = {}
    if killed:
        part.add(f"run 1: SIGTERM to the training job (pid {killed}) once "
                 f"{ckpt_seen.name} existed; snakemake exit {proc.returncode} "
                 f"({time.perf_counter() - t:.0f} s)")
        checks["killed job failed with 143"] = proc.returncode != 0 and "143" in first
        t = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=max(5.0, deadline.left()))
            rc, text = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            rc, text = "killed at the part's time limit", str(e.stdout or "")
        log_parts.append(f"===== run 2, resuming (exit {rc}, {time.perf_counter() - t:.0f} s)"
                         f"\n{text}")
        part.add(f"run 2 (resume): snakemake exit {rc} ({time.perf_counter() - t:.0f} s)")
        checks["rerun succeeded"] = rc == 0
    else:
        part.add(f"run 1: snakemake exit {proc.returncode} ({time.perf_counter() - t:.0f} s); "
                 "the training finished before its checkpoint was seen: resume not exercised")
        checks["run succeeded"] = proc.returncode == 0

    train_logs = sorted((results / "logs" / "train").glob("**/*.log")) if results.exists() else []
    train_log = "\n".join(p.read_text(errors="replace") for p in train_logs)
    metrics = sorted((results / "train").glob("**/seed0/metrics.json")) if results.exists() else []
    m = json.loads(metrics[0].read_text()) if metrics else {}
    want = "cuda" if s.device.startswith("cuda") else "cpu"
    chose = re.search(r"training seed 0 on (\S+)", train_log)
    checks[f"{Path(target).name} written"] = (workdir / target).exists()
    checks[f"training ran on {want} (log)"] = bool(chose and chose.group(1).startswith(want))
    checks[f"metrics.json says {want}"] = str(m.get("device", "")).startswith(want)
    checks["iterations run"] = m.get("iterations_run") == s.snk_iterations
    checks["no checkpoint left"] = not (results.exists() and any(results.glob("**/*.ckpt")))
    checks["benchmark file"] = bool(results.exists()
                                    and any((results / "benchmarks").glob("train/**/*.tsv")))
    resumed = re.search(r"resumed from \S+ at iteration (\d+)/(\d+)", train_log)
    if killed:
        checks["resumed from the checkpoint"] = bool(resumed)
    for name, passed in checks.items():
        part.add(f"{'ok  ' if passed else 'FAIL'} {name}")
    if resumed:
        part.add(f"the rerun resumed at iteration {resumed.group(1)}/{resumed.group(2)}")
    for line in train_log.splitlines():
        if "it/s" in line:
            part.add(f"train log: {line.strip()[:160]}")
    log_parts.append("===== training job log(s)\n" + train_log)
    (out / "snakemake.log").write_text("\n".join(log_parts))
    part.data.update({"checks": checks, "metrics": m, "workdir": str(workdir),
                      "device_chosen": chose.group(1) if chose else None})
    part.ok = all(checks.values())


# ------------------------------------------------------------------------- main

RUNNERS = {1: part_tests, 2: part_numerics, 3: part_throughput, 4: part_hours,
           5: part_snakemake}


def run_part(n: int, ctx: dict) -> Part:
    part = Part(n, PARTS[n])
    limit = ctx["settings"].limits[n]
    say(f"\n=== part {n}: {part.name} (time limit {limit} s)")
    t = time.perf_counter()
    try:
        with time_limit(limit + 5):  # the parts keep their own soft deadlines inside it
            RUNNERS[n](part, ctx)
    except PartTimeout as e:
        part.ok, part.error = False, str(e)
    except Exception as e:  # noqa: BLE001 - reported; the next part runs
        part.ok, part.error = False, f"{type(e).__name__}: {e}"
        say(traceback.format_exc())
    part.seconds = time.perf_counter() - t
    say(f"=== part {n}: {part.name}: {'PASS' if part.ok else 'FAIL'} ({part.seconds:.0f} s)"
        + (f": {part.error}" if part.error else ""))
    return part


def environment(device: str) -> dict:
    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "cuda": torch.version.cuda, "platform": platform.platform(),
           "cpus": os.cpu_count(), "device": device}
    if torch.device(device).type == "cuda":
        p = torch.cuda.get_device_properties(torch.device(device))
        env.update({"gpu": p.name, "capability": f"{p.major}.{p.minor}",
                    "gpu_memory_gib": round(p.total_memory / 2**30, 1),
                    "multiprocessors": p.multi_processor_count})
    try:
        import snakemake

        env["snakemake"] = f"{snakemake.__version__} ({Path(snakemake.__file__).parent})"
    except ImportError:
        env["snakemake"] = None
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-smoke", action="store_true",
                   help="every part on the CPU at toy size (CI), in under two minutes")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for figures and logs (default: $OUT, else results/gpu_check)")
    p.add_argument("--parts", default="1,2,3,4,5", help="comma-separated part numbers")
    p.add_argument("--compile-variant", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--width", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--evals", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    p.add_argument("--splits", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--test-images", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.compile_variant:
        return _compile_variant(a)
    s = SMOKE if a.cpu_smoke else FULL
    if not s.smoke and not torch.cuda.is_available():
        say("gpu_check: CUDA is not available on this machine; on a machine without a GPU run "
            "it with --cpu-smoke")
        return 2
    out = a.out or Path(os.environ.get("OUT") or REPO / "results" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    parts = [int(x) for x in a.parts.split(",") if x.strip()]
    if not parts or any(n not in PARTS for n in parts):
        p.error(f"--parts: numbers from {sorted(PARTS)}")
    torch.set_num_threads(1 if s.smoke else min(8, os.cpu_count() or 1))
    env = environment(s.device)
    device_name = env.get("gpu", f"CPU, {env['cpus']} cores")
    ctx = {"settings": s, "out": out, "device_name": device_name}
    say(f"gpu_check{' --cpu-smoke' if s.smoke else ''}: {json.dumps(env)}")
    t0 = time.perf_counter()
    done = [run_part(n, ctx) for n in parts]
    total = time.perf_counter() - t0
    summary = {"smoke": s.smoke, "environment": env, "seconds": total,
               "parts": {str(x.number): {"name": x.name, "ok": x.ok, "seconds": x.seconds,
                                         "error": x.error, "lines": x.lines, "data": x.data}
                         for x in done}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))

    say(f"\n{'=' * 24} gpu_check summary {'=' * 24}")
    say(f"{device_name}; torch {env['torch']}, python {env['python']}; {total:.0f} s in all")
    for x in done:
        say(f"[{'PASS' if x.ok else 'FAIL'}] part {x.number} {x.name:10s} ({x.seconds:4.0f} s)"
            + (f": {x.error}" if x.error else ""))
        for line in x.lines:
            say(f"    {line}")
    files = sorted(f.name for f in out.iterdir() if f.is_file())
    say(f"files in {out}: {', '.join(files)}")
    passed = sum(x.ok for x in done)
    say(f"RESULT: {passed}/{len(done)} parts passed")
    return 0 if passed == len(done) else 1


if __name__ == "__main__":
    raise SystemExit(main())
