"""Training one ``nn.Module``: the protocol's SGD step on device-resident data, and ``train``.

The loop around the steps (schedule, data order, evaluation, divergence, checkpoints, SIGTERM,
resume) is ``spp.train.train_loop.run_training``, shared with ``spp.train.stacked.train_stacked``;
this module holds what is particular to one module: :class:`ModuleStepper`, and the protocol's
pieces both steppers use (``TrainConfig``, ``augment_batch``, ``param_groups``).

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

Masks: ``spp.pruning.masks.apply_mask`` zeroes pruned weights and masks their gradients; in
addition every masked weight is multiplied by its mask after each step (one foreach op), so pruned
weights are exactly zero after every step whatever the optimiser does.

Determinism: every random draw (data order, augmentation) comes from one ``torch.Generator``
seeded with ``cfg.seed`` on the training device; the checkpoint adds the model and the global
RNG states to the loop's, so a resumed run is bit-identical on CPU.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spp.data.datasets import DataSplits
from spp.nets.models import prunable_parameters
from spp.train.fastpath import (
    FastPath,
    autocast_context,
    compile_model,
    cuda_flags,
    prepare_model,
    sgd_options,
    to_device_batch,
)

# The loop's names, importable from here as before the loop was shared.
from spp.train.train_loop import SIGTERM_EXIT_STATUS as SIGTERM_EXIT_STATUS
from spp.train.train_loop import TrainingInterrupted as TrainingInterrupted
from spp.train.train_loop import TrainResult, run_training
from spp.train.train_loop import inputs_fingerprint as inputs_fingerprint
from spp.train.train_loop import stale_checkpoint as stale_checkpoint
from spp.train.train_loop import summarize as summarize

# recipe lengths in epochs (TrainConfig.from_recipe) -> the field they set, in iterations
EPOCH_KEYS = {"epochs": "iterations", "milestone_epochs": "milestones",
              "eval_every_epochs": "eval_every", "warmup_epochs": "warmup"}
# which parameters weight decay acts on: the linear/conv weights and biases (Lee et al.), or all
WEIGHT_DECAY_ON = ("prunable", "all")
# the second child of the augmentation (augment_batch): CIFAR-10's and Tiny-ImageNet's
AUGMENTATIONS = ("translate", "crop-pad", "flip-crop")


@dataclass
class TrainConfig:
    """One training run. The schedule: ``lr`` times ``gamma`` at each of ``milestones`` (iterations;
    OpenLTH's multi-step schedule), or else times 0.1 every ``lr_decay_every`` iterations (Lee et
    al.'s); neither: constant. ``from_recipe`` reads lengths given in epochs.

    checkpoint_every: None or 0 checkpoints only on SIGTERM and at the end (if a path is given).
    augmentation: the augmentation's second child besides the flip (``augment_batch``);
    translate_px: its size in px, the maximum translation (4, CIFAR-10) or crop/pad per side
    (8, Tiny-ImageNet).
    """

    iterations: int
    batch_size: int
    lr: float = 0.1
    lr_decay_every: int | None = None
    milestones: tuple[int, ...] | None = None
    gamma: float = 0.1
    warmup: int = 0
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
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 0:
            raise ValueError(f"TrainConfig.warmup must be an integer >= 0, got {self.warmup!r}")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 1, got {v!r}")
        for name in ("lr_decay_every", "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"TrainConfig.{name} must be None or an integer >= 0, got {v!r}")
        if self.milestones is not None:
            ms = self.milestones
            if (not isinstance(ms, (list, tuple)) or not ms
                    or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in ms)
                    or list(ms) != sorted(set(ms))):
                raise ValueError(f"TrainConfig.milestones must be increasing iterations >= 1, "
                                 f"got {ms!r}")
            if self.lr_decay_every:
                raise ValueError("TrainConfig: give milestones or lr_decay_every, not both "
                                 f"(milestones={ms!r}, lr_decay_every={self.lr_decay_every})")
            self.milestones = tuple(ms)
        for name in ("lr", "momentum", "weight_decay", "gamma"):
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
        if self.milestones:
            lr = float(self.lr) * float(self.gamma) ** bisect.bisect_right(self.milestones,
                                                                           iteration)
        elif self.lr_decay_every:
            lr = float(self.lr) * 0.1 ** (iteration // self.lr_decay_every)
        else:
            lr = float(self.lr)
        if iteration < self.warmup:  # linear from 0 (OpenLTH's warmup_steps)
            lr *= iteration / self.warmup
        return lr

    @classmethod
    def from_recipe(cls, recipe: dict, n_train: int, **overrides) -> TrainConfig:
        """A config from a recipe whose lengths may be in epochs: ``epochs``,
        ``milestone_epochs`` and ``eval_every_epochs`` become ``iterations``, ``milestones`` and
        ``eval_every``. One epoch is ``n_train // batch_size`` steps: the loop draws full batches
        of a fresh permutation each epoch (OpenLTH counts ``ceil``, its last batch short)."""
        r = {**recipe, **overrides}
        by_epoch = [k for k in EPOCH_KEYS if k in r]
        if by_epoch:
            bsz = r.get("batch_size")
            if not isinstance(bsz, int) or bsz < 1 or bsz > n_train:
                raise ValueError(f"recipe batch_size must be an integer in [1, {n_train}] to "
                                 f"count epochs, got {bsz!r}")
            per_epoch = n_train // bsz
            for key in by_epoch:
                if EPOCH_KEYS[key] in r:
                    raise ValueError(f"recipe gives both {key} and {EPOCH_KEYS[key]}; give one")
                v = r.pop(key)
                r[EPOCH_KEYS[key]] = ([round(e * per_epoch) for e in v] if isinstance(v, list)
                                      else round(v * per_epoch))
        return cls(**r)


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
    ``flip-crop`` is OpenLTH's CIFAR-10 augmentation instead (Frankle et al.): every image flipped
    with probability 1/2 and randomly cropped from a ``max_shift``-px zero padding (a translation
    by -s..s per axis; zero is the mean colour here, black in torchvision's pixel-space padding).
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}")
    b, _, h, w = x.shape
    dev = x.device
    if kind == "flip-crop":  # OpenLTH's CIFAR-10: both on every image
        chose_flip = chose_second = torch.ones(b, dtype=torch.bool, device=dev)
    else:
        count = torch.randint(0, 3, (b,), generator=gen, device=dev)  # children applied: 0-2
        first = torch.rand(b, generator=gen, device=dev) < 0.5  # which one, when only one
        chose_flip = (count == 2) | ((count == 1) & first)
        chose_second = (count == 2) | ((count == 1) & ~first)
    flip = chose_flip & (torch.rand(b, generator=gen, device=dev) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    s = max_shift
    if s == 0:
        return x
    if kind in ("translate", "flip-crop"):
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


def _mask_tensors(model: nn.Module, mask: dict | None, device) -> tuple[list, list]:
    if not mask:
        return [], []
    from spp.pruning.masks import apply_mask

    apply_mask(model, mask)  # validates names and shapes, zeroes weights, masks gradients
    params = dict(model.named_parameters())
    names = list(mask)
    return ([params[n] for n in names],
            [mask[n].to(device=device, dtype=params[n].dtype) for n in names])


def param_groups(named: dict[str, torch.Tensor], decayed: set[str], cfg: TrainConfig) -> list:
    """SGD parameter groups: weight decay on the ``decayed`` names (the model's linear and conv
    weights and biases), none on the rest (batch norm), unless ``cfg.weight_decay_on == "all"``.
    Shared by train() and spp.train.stacked.train_stacked()."""
    if cfg.weight_decay_on == "all":
        return [{"params": list(named.values()), "weight_decay": cfg.weight_decay}]
    groups = [{"params": [p for n, p in named.items() if n in decayed],
               "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in named.items() if n not in decayed], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def on_device(data: DataSplits, cfg: TrainConfig, device) -> tuple[torch.device, DataSplits, int]:
    """(device, the splits on it, training-set size), refusing a batch larger than the training
    set before any work: shared by train() and spp.train.stacked.train_stacked()."""
    device = torch.device(device)
    data = data.to(device)
    n_train = len(data.y["train"])
    if cfg.batch_size > n_train:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n_train} training examples")
    return device, data, n_train




class ModuleStepper:
    """One ``nn.Module`` under its mask, for ``run_training``: a single run.

    Owns the model's optimiser (``param_groups``: weight decay per ``cfg.weight_decay_on``), the
    fast path (``fast``: ignored on CPU) and the mask, re-applied after every step.
    """

    name = "train"
    per_seed_logs = False
    graph_capturable = True  # one module, one optimiser: what spp.train.graph_step captures

    def __init__(self, model: nn.Module, mask: dict | None, data: DataSplits, cfg: TrainConfig,
                 device: torch.device, fast: FastPath):
        self.model, self.mask, self.data, self.cfg = model, mask, data, cfg
        self.device, self.fast = device, fast
        prepare_model(model, device, fast).train()  # .to(device), channels-last on CUDA if asked
        self.step_model = compile_model(model, device, fast)  # the model unless compiling on CUDA
        self.masked_params, self.mask_values = _mask_tensors(model, mask, device)
        decayed = set(prunable_parameters(model))
        self.optimizer = torch.optim.SGD(
            param_groups(dict(model.named_parameters()), decayed, cfg), lr=cfg.lr,
            momentum=cfg.momentum, **sgd_options(device))

    def inputs_fingerprint(self) -> str:
        return inputs_fingerprint([self.model.state_dict()], [self.mask], self.data)

    def batch(self, indices: list[torch.Tensor], generators: list[torch.Generator]
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's inputs: the gathered, normalised, augmented images (on the device, in
        the fast path's memory format) and their labels. Shared with ``spp.train.graph_step``."""
        (idx,), (gen,), cfg = indices, generators, self.cfg
        x = self.data.normalize(self.data.x["train"].index_select(0, idx))  # = x[idx], faster
        if cfg.augment:
            x = augment_batch(x, gen, cfg.translate_px, cfg.augmentation)
        return to_device_batch(x, self.device, self.fast), self.data.y["train"].index_select(0, idx)

    def step(self, indices: list[torch.Tensor], generators: list[torch.Generator]
             ) -> torch.Tensor:
        x, y = self.batch(indices, generators)
        with autocast_context(self.device, self.fast.bf16):
            loss = F.cross_entropy(self.step_model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.masked_params:
            with torch.no_grad():
                torch._foreach_mul_(self.masked_params, self.mask_values)
        return loss.detach()

    def error_rates(self, split: str) -> list[float]:
        return [error_rate(self.model, self.data, split, self.cfg.eval_batch_size)]

    def stop(self, run: int) -> None:
        pass  # the only run: the loop ends, the model keeps its last weights

    def state_dict(self) -> dict:
        cuda = self.device.type == "cuda"
        return {"model": self.model.state_dict(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if cuda else []}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


def train(model: nn.Module, mask: dict | None, data: DataSplits, cfg: TrainConfig, device="cpu",
          checkpoint_path: str | Path | None = None,
          log: Callable[[str], None] = print, fast=None,
          after_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train ``model`` (in place) under ``mask`` on ``data``; see the module doc for the protocol
    and ``spp.train.train_loop`` for the loop (divergence, checkpoints, SIGTERM, resume).

    ``after_step(it)``: called after each step with the number of steps done (e.g. to keep the
    weights of an early iteration for rewinding).

    ``fast``: an ``spp.train.fastpath.FastPath`` (bf16 autocast, channels-last, cuDNN
    autotuning/TF32, torch.compile) for CUDA; ignored on CPU, where results stay bit-identical.

    Resumes from ``checkpoint_path`` when that file exists (its config must match ``cfg``, and
    it must have been trained from the same weights, mask and data: ``inputs_fingerprint``).
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    device, data, n_train = on_device(data, cfg, device)
    fast = fast if fast is not None else FastPath()
    stepper = ModuleStepper(model, mask, data, cfg, device, fast)
    with cuda_flags(device, fast):
        (result,) = run_training(stepper, cfg, [cfg.seed], n_train, device, checkpoint_path, log,
                                 after_step=after_step)
    return result
