"""The training engine: iteration-based SGD on device-resident data, resumable and deterministic.

Protocol (Lee et al. 2020, settled by the authors' code): SGD, momentum 0.9, learning rate 0.1
times 0.1 every ``lr_decay_every`` iterations; weight decay 5e-4 on the weights and biases of the
linear and conv layers only (the original adds ``2.5e-4 * sum(w^2)`` over its masked ``w`` and
``b`` tensors to the loss, whose gradient is SGD weight decay 5e-4 on them), never on batch norm
(``weight_decay_on="all"``: every parameter, as OpenLTH); evaluation on the validation and test
splits every ``eval_every`` iterations (and after the last one).

Why it is fast: the data already sits on the device as uint8; each epoch is one on-device
permutation; batches are gathered, normalised and augmented (the authors' flip + translation or
crop-pad, one random draw per example, no Python loop over examples) with tensor ops; the
training loss is accumulated on the device and read only at log and evaluation points, so there
is no per-step host sync.

Divergence: a non-finite loss is detected at those read points (every ``log_every`` iterations and
at each evaluation), not per step, to keep the device asynchronous. The run then stops, is marked
``diverged``, and keeps the metrics of its last good evaluation (None if there was none); at most
``log_every`` wasted iterations.

Masks: ``spp.masks.apply_mask`` zeroes pruned weights and masks their gradients; in addition every
masked weight is multiplied by its mask after each step (one foreach op), so pruned weights are
exactly zero after every step whatever the optimiser does.

Determinism and resumption: every random draw (data order, augmentation) comes from one
``torch.Generator`` seeded with ``cfg.seed`` on the training device. A checkpoint (atomic; plain
tensors and Python values, loadable with ``weights_only=True``) holds model, optimiser, generator
and RNG states, the epoch permutation and position, the loss accumulators and the history, so a
resumed run finishes bit-identical to an uninterrupted one (on CPU; CUDA kernels may not be
deterministic). On SIGTERM (SLURM's warning before a time limit) the loop finishes the current
step, checkpoints, and raises :class:`TrainingInterrupted`, a ``SystemExit`` with status 143: the
job fails cleanly and a retry resumes. After the last iteration a final checkpoint is written, and
a rerun with it returns the stored result at once. Removing the checkpoint is the caller's job,
once the run's outputs are written (e.g. ``Path(ckpt).unlink(missing_ok=True)``).
"""

from __future__ import annotations

import hashlib
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spp.data import DataSplits, save_atomic
from spp.fastpath import (
    FastPath,
    autocast_context,
    compile_model,
    cuda_flags,
    prepare_model,
    sgd_options,
    to_device_batch,
)
from spp.models import prunable_parameters

CHECKPOINT_FORMAT = "spp-train-checkpoint/1"
SIGTERM_EXIT_STATUS = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM
# which parameters weight decay acts on: the linear/conv weights and biases (Lee et al.), or all
WEIGHT_DECAY_ON = ("prunable", "all")
# the second child of the augmentation (augment_batch): CIFAR-10's and Tiny-ImageNet's
AUGMENTATIONS = ("translate", "crop-pad")
# fields that do not change the result, so a checkpoint may be resumed with other values
_COSMETIC = ("log_every",)


@dataclass
class TrainConfig:
    """One training run. ``lr_decay_every`` None or 0: constant learning rate.

    checkpoint_every: None or 0 checkpoints only on SIGTERM and at the end (if a path is given).
    augmentation: the augmentation's second child besides the flip (``augment_batch``);
    translate_px: its size in px, the maximum translation (4, CIFAR-10) or crop/pad per side
    (8, Tiny-ImageNet).
    """

    iterations: int
    batch_size: int
    lr: float = 0.1
    lr_decay_every: int | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eval_every: int = 1000
    augment: bool = False
    checkpoint_every: int | None = None
    seed: int = 0
    translate_px: int = 4
    log_every: int = 100
    eval_batch_size: int = 1000
    weight_decay_on: str = "prunable"
    augmentation: str = "translate"

    def __post_init__(self):
        positive = ("iterations", "batch_size", "eval_every", "log_every", "eval_batch_size")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 1, got {v!r}")
        for name in ("lr_decay_every", "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"TrainConfig.{name} must be None or an integer >= 0, got {v!r}")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {v!r}")
        if self.weight_decay_on not in WEIGHT_DECAY_ON:
            raise ValueError(f"TrainConfig.weight_decay_on must be one of "
                             f"{', '.join(WEIGHT_DECAY_ON)}, got {self.weight_decay_on!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"TrainConfig.augmentation must be one of {', '.join(AUGMENTATIONS)}"
                             f", got {self.augmentation!r}")
        if not isinstance(self.translate_px, int) or self.translate_px < 0:
            raise ValueError(f"TrainConfig.translate_px must be an integer >= 0, "
                             f"got {self.translate_px!r}")

    def lr_at(self, iteration: int) -> float:
        """Learning rate of the step that follows ``iteration`` completed steps."""
        if not self.lr_decay_every:
            return float(self.lr)
        return float(self.lr) * 0.1 ** (iteration // self.lr_decay_every)


@dataclass
class TrainResult:
    summary: dict
    history: list[dict]


class TrainingInterrupted(SystemExit):
    """Raised after SIGTERM once the checkpoint is written; exits with status 143 if uncaught."""

    def __init__(self, iteration: int, checkpoint_path: str | None):
        super().__init__(SIGTERM_EXIT_STATUS)
        self.iteration = iteration
        self.checkpoint_path = checkpoint_path


def augment_batch(x: torch.Tensor, gen: torch.Generator, max_shift: int = 4,
                  kind: str = "translate") -> torch.Tensor:
    """The authors' imgaug pipeline, ``SomeOf((0, None), [Fliplr(0.5), second])``, one draw per
    example, as batched tensor ops.

    SomeOf draws how many of its two children an image gets, uniformly from {0, 1, 2} (one: each
    with probability 1/2), so about 1/4 of the images are flipped and 1/2 get the second child
    (their order does not matter in distribution: both children are symmetric). The second child
    (``kind``): ``translate`` = ``Affine(translate_px=(-s, s))`` per axis (CIFAR-10; 80/81 of
    those images move), uncovered pixels zero (in normalised units, i.e. the mean colour: the
    authors translate normalised images with zero fill); ``crop-pad`` = ``CropAndPad(px=(-s, s))``
    on each of the four sides independently (Tiny-ImageNet, s = 8; positive pads with zeros,
    negative crops), resized back to the input size (bilinear; imgaug's default is cubic).
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}")
    b, _, h, w = x.shape
    dev = x.device
    count = torch.randint(0, 3, (b,), generator=gen, device=dev)  # children applied: 0, 1, 2
    first = torch.rand(b, generator=gen, device=dev) < 0.5  # which one, when only one
    chose_flip = (count == 2) | ((count == 1) & first)
    chose_second = (count == 2) | ((count == 1) & ~first)
    flip = chose_flip & (torch.rand(b, generator=gen, device=dev) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    s = max_shift
    if s == 0:
        return x
    if kind == "translate":
        shift = torch.randint(-s, s + 1, (2, b), generator=gen, device=dev) * chose_second
        padded = F.pad(x, (s, s, s, s))
        rows = torch.arange(s, s + h, device=dev)[None, :] - shift[0][:, None]  # (b, h)
        cols = torch.arange(s, s + w, device=dev)[None, :] - shift[1][:, None]  # (b, w)
        idx = torch.arange(b, device=dev)[:, None, None]
        out = padded[idx, :, rows[:, :, None], cols[:, None, :]]  # (b, h, w, c)
        return out.permute(0, 3, 1, 2).contiguous()
    sides = torch.randint(-s, s + 1, (4, b), generator=gen, device=dev) * chose_second
    return torch.where(chose_second[:, None, None, None], crop_pad(x, sides), x)


def crop_pad(x: torch.Tensor, sides: torch.Tensor) -> torch.Tensor:
    """imgaug's ``CropAndPad`` with ``keep_size``: ``sides`` ``[4, B]`` = top, right, bottom, left
    in px per example (positive pads with zeros, negative crops), then resized back to the input
    size (bilinear, half-pixel centres). The new image spans ``[-top, h + bottom] x [-left, w +
    right]`` of the old one in pixel-edge coordinates: one sampling grid per example."""
    b, _, h, w = x.shape
    top, right, bottom, left = sides.to(x.dtype)
    i = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h  # output centres in (0, 1)
    j = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w
    ys = -top[:, None] + i[None, :] * (h + top + bottom)[:, None]  # (b, h) source rows, edges
    xs = -left[:, None] + j[None, :] * (w + left + right)[:, None]  # (b, w)
    grid = torch.stack(torch.broadcast_tensors(
        (2 * xs / w - 1)[:, None, :], (2 * ys / h - 1)[:, :, None]), dim=-1)  # (b, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def error_rate(model: nn.Module, data: DataSplits, split: str, batch_size: int = 1000) -> float:
    """Top-1 error in percent on a whole split (eval mode; train mode restored after)."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), dtype=torch.long, device=data.device)
    for x, y in data.batches(split, batch_size):
        wrong += (model(x).argmax(1) != y).sum()
    model.train(was_training)
    n = len(data.y[split])
    return 100.0 * wrong.item() / n if n else float("nan")


def summarize(history: list[dict], diverged: bool, iterations_run: int) -> dict:
    """error: test error at the best validation evaluation (earliest on ties);
    error_paper_protocol: minimum test error (the paper's selection on the test set)."""
    if not history:
        return {"error": None, "error_paper_protocol": None, "final_error": None,
                "best_iteration": None, "diverged": diverged, "iterations_run": iterations_run}
    best = min(history, key=lambda r: (r["val_error"], r["iteration"]))
    return {
        "error": best["test_error"],
        "error_paper_protocol": min(r["test_error"] for r in history),
        "final_error": history[-1]["test_error"],
        "best_iteration": best["iteration"],
        "diverged": diverged,
        "iterations_run": iterations_run,
    }


def _mask_tensors(model: nn.Module, mask: dict | None, device) -> tuple[list, list]:
    if not mask:
        return [], []
    from spp.masks import apply_mask

    apply_mask(model, mask)  # validates names and shapes, zeroes weights, masks gradients
    params = dict(model.named_parameters())
    names = list(mask)
    return ([params[n] for n in names],
            [mask[n].to(device=device, dtype=params[n].dtype) for n in names])


class _SigtermFlag:
    """Sets ``raised`` on SIGTERM (main thread only), restoring the previous handler on exit."""

    def __init__(self):
        self.raised = False
        self._prev = None
        self._installed = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGTERM, self._prev if self._prev is not None else signal.SIG_DFL)


def inputs_fingerprint(states: Sequence[dict], masks: Sequence[dict | None],
                       data: DataSplits) -> str:
    """A content digest of what a run trains from: the starting weights, the masks and the data.

    Stored in every checkpoint: a checkpoint whose inputs changed since (a rebuilt init, mask or
    dataset upstream) is discarded, not resumed. Taken when checkpointing is on; it hashes the
    tensors' bytes (the MNIST split: ~0.1 s).
    """
    h = hashlib.sha256()

    def add(name: str, t: torch.Tensor) -> None:
        t = t.detach().to("cpu").reshape(-1).contiguous()
        h.update(f"{name}:{t.dtype}:{t.numel()};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")

    for i, (state, mask) in enumerate(zip(states, masks, strict=True)):
        for k, v in state.items():
            add(f"{i}.w.{k}", v)
        for k, v in (mask or {}).items():
            add(f"{i}.m.{k}", v.to(torch.uint8))
    for split in sorted(data.x):
        add(f"x.{split}", data.x[split])
        add(f"y.{split}", data.y[split])
    return h.hexdigest()


def stale_checkpoint(state: dict, fingerprint: str, ckpt: Path, log: Callable[[str], None]) -> bool:
    """True (and said in the log) when a checkpoint was trained from other inputs; the caller
    then starts afresh. Shared by train() and spp.stacked.train_stacked()."""
    if state.get("inputs") == fingerprint:
        return False
    log(f"[train] discarding checkpoint {ckpt}: it was trained from other inputs (the init, "
        "mask or data changed since it was written); starting afresh")
    return True


def param_groups(named: dict[str, torch.Tensor], decayed: set[str], cfg: TrainConfig) -> list:
    """SGD parameter groups: weight decay on the ``decayed`` names (the model's linear and conv
    weights and biases), none on the rest (batch norm), unless ``cfg.weight_decay_on == "all"``.
    Shared by train() and spp.stacked.train_stacked()."""
    if cfg.weight_decay_on == "all":
        return [{"params": list(named.values()), "weight_decay": cfg.weight_decay}]
    groups = [{"params": [p for n, p in named.items() if n in decayed],
               "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in named.items() if n not in decayed], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def on_device(data: DataSplits, cfg: TrainConfig, device) -> tuple[torch.device, DataSplits, int]:
    """(device, the splits on it, training-set size), refusing a batch larger than the training
    set before any work: shared by train() and spp.stacked.train_stacked()."""
    device = torch.device(device)
    data = data.to(device)
    n_train = len(data.y["train"])
    if cfg.batch_size > n_train:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n_train} training examples")
    return device, data, n_train


def train(model: nn.Module, mask: dict | None, data: DataSplits, cfg: TrainConfig, device="cpu",
          checkpoint_path: str | Path | None = None,
          log: Callable[[str], None] = print, fast=None) -> TrainResult:
    """Train ``model`` (in place) under ``mask`` on ``data``; see the module doc for the protocol.

    ``fast``: an ``spp.fastpath.FastPath`` (bf16 autocast, channels-last, cuDNN autotuning/TF32,
    torch.compile) for CUDA; ignored on CPU, where results stay bit-identical.

    Resumes from ``checkpoint_path`` when that file exists (its config must match ``cfg``, and
    it must have been trained from the same weights, mask and data: ``inputs_fingerprint``).
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    device, data, n_train = on_device(data, cfg, device)
    fast = fast if fast is not None else FastPath()
    prepare_model(model, device, fast).train()  # .to(device), channels-last on CUDA if asked
    step_model = compile_model(model, device, fast)  # the model itself unless compiling on CUDA
    masked_params, mask_values = _mask_tensors(model, mask, device)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    fingerprint = inputs_fingerprint([model.state_dict()], [mask], data) if ckpt else ""
    decayed = set(prunable_parameters(model))
    opt = torch.optim.SGD(param_groups(dict(model.named_parameters()), decayed, cfg), lr=cfg.lr,
                          momentum=cfg.momentum, **sgd_options(device))
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    xtr, ytr = data.x["train"], data.y["train"]

    it, pos, history, diverged = 0, n_train, [], False
    perm = torch.empty(0, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), device=device)
    loss_n = 0
    log_sum = torch.zeros((), device=device)
    log_n = 0

    saved_at = -1

    def save_checkpoint():
        nonlocal saved_at
        if ckpt is None or saved_at == it:
            return
        saved_at = it
        save_atomic({
            "format": CHECKPOINT_FORMAT,
            "config": asdict(cfg),
            "inputs": fingerprint,
            "iteration": it,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            "perm": perm,
            "pos": pos,
            "loss_sum": loss_sum,
            "loss_n": loss_n,
            "log_sum": log_sum,
            "log_n": log_n,
            "history": history,
            "diverged": diverged,
        }, ckpt)

    state = None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("format") == CHECKPOINT_FORMAT and stale_checkpoint(state, fingerprint,
                                                                          ckpt, log):
            state = None
    if state is not None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{ckpt}: not a training checkpoint; delete it to start afresh")
        ours = {k: v for k, v in asdict(cfg).items() if k not in _COSMETIC}
        theirs = {k: v for k, v in state["config"].items() if k not in _COSMETIC}
        if ours != theirs:
            raise ValueError(f"{ckpt}: checkpoint of another configuration ({theirs}, this run: "
                             f"{ours}); delete it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        it, pos, loss_n, log_n = state["iteration"], state["pos"], state["loss_n"], state["log_n"]
        perm, loss_sum, log_sum = state["perm"], state["loss_sum"], state["log_sum"]
        history, diverged = list(state["history"]), bool(state["diverged"])
        saved_at = it
        log(f"[train] resumed from {ckpt} at iteration {it}/{cfg.iterations}")

    lr_now = None
    t_last, it_last = time.perf_counter(), it
    with cuda_flags(device, fast), _SigtermFlag() as sigterm:
        while it < cfg.iterations and not diverged:
            if pos + cfg.batch_size > n_train:  # new epoch: fresh on-device permutation
                perm = torch.randperm(n_train, generator=gen, device=device)
                pos = 0
            idx = perm[pos:pos + cfg.batch_size]
            pos += cfg.batch_size
            x = data.normalize(xtr.index_select(0, idx))  # = xtr[idx], several x faster on CPU
            if cfg.augment:
                x = augment_batch(x, gen, cfg.translate_px, cfg.augmentation)
            if cfg.lr_at(it) != lr_now:
                lr_now = cfg.lr_at(it)
                for group in opt.param_groups:
                    group["lr"] = lr_now
            with autocast_context(device, fast.bf16):
                logits = step_model(to_device_batch(x, device, fast))
                loss = F.cross_entropy(logits, ytr.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if masked_params:
                with torch.no_grad():
                    torch._foreach_mul_(masked_params, mask_values)
            loss = loss.detach()
            loss_sum += loss
            log_sum += loss
            loss_n += 1
            log_n += 1
            it += 1

            if it % cfg.log_every == 0 or it == cfg.iterations:
                mean = log_sum.item() / log_n  # the only host sync between evaluations
                now = time.perf_counter()
                rate = (it - it_last) / max(now - t_last, 1e-9)
                log(f"[train] iter {it}/{cfg.iterations} loss {mean:.4f} lr {lr_now:.4g} "
                    f"{rate:.1f} it/s")
                t_last, it_last = now, it
                log_sum.zero_()
                log_n = 0
                if not math.isfinite(mean):
                    diverged = True
            if not diverged and (it % cfg.eval_every == 0 or it == cfg.iterations):
                train_loss = loss_sum.item() / loss_n
                if not math.isfinite(train_loss):
                    diverged = True
                else:
                    row = {
                        "iteration": it,
                        "train_loss": train_loss,
                        "val_error": error_rate(model, data, "val", cfg.eval_batch_size),
                        "test_error": error_rate(model, data, "test", cfg.eval_batch_size),
                    }
                    history.append(row)
                    loss_sum.zero_()
                    loss_n = 0
                    log(f"[eval] iter {it} train_loss {train_loss:.4f} "
                        f"val_error {row['val_error']:.2f}% test_error {row['test_error']:.2f}%")
                    t_last = time.perf_counter()  # evaluation time is not training speed
            if diverged:
                log(f"[train] loss is not finite at iteration {it}: diverged; stopping and "
                    "keeping the last good evaluation")
                break
            if cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
                save_checkpoint()
            if sigterm.raised:
                save_checkpoint()
                log(f"[train] SIGTERM: checkpoint written at iteration {it} to {ckpt}; exiting "
                    f"with status {SIGTERM_EXIT_STATUS}, rerun to resume")
                raise TrainingInterrupted(it, str(ckpt) if ckpt else None)
        save_checkpoint()

    summary = summarize(history, diverged, it)
    return TrainResult(summary=summary, history=history)
