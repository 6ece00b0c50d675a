"""Seed stacking: S seeds of one table cell trained in one process as one stacked computation.

Why: the paper's MNIST-scale runs (7-layer width-100 MLPs, LeNet-300-100, batch 100) are so small
that one seed cannot keep a device busy; per-step overhead (Python, kernel launches, optimizer
bookkeeping) dominates. Stacking S seeds turns S small matrix multiplies into one batched multiply
(``torch.baddbmm`` on ``[S, out, in]`` weights) and S optimizer steps into one elementwise update
on the stacked tensors, so the overhead is paid once per step instead of S times.

Each seed keeps everything that makes it a separate run: its own initial weights (built with
``spp.initializers`` on its own ``nn.Module`` and stacked here), its own mask, its own data order
and augmentation, its own loss, metrics, history and divergence flag. The loss of the stacked
model is the *sum* of the per-seed mean losses, so each seed's gradient is exactly its own gradient;
SGD with momentum and weight decay is elementwise, so the stacked update equals S separate
updates. Results equal training the seeds one by one up to float rounding (batched and single
matrix multiplies may sum in a different order); ``tests/test_stacked.py`` checks this against
``spp.training.train``.

Two stackers:

- ``StackedMLP``: ``spp.models.MLP`` (``mlp-K-ACT``, ``lenet300``): explicit batched multiplies,
  the fast path.
- ``StackedFunctional``: any other model (conv nets, batch norm) through ``torch.func.vmap`` over
  ``functional_call`` with stacked parameters and buffers. It is correct for every architecture;
  whether it is *faster* than separate runs depends on the model and device (measure with
  ``benchmarks/stacked_seeds.py``); the workflow stacks where it wins (MLPs).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spp.models import MLP


def _check_models(models: Sequence[nn.Module]) -> list[nn.Module]:
    models = list(models)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError(f"models must be a non-empty sequence of nn.Module, got {models!r}")
    first = models[0]
    ref = [(k, tuple(v.shape), v.dtype) for k, v in first.state_dict().items()]
    for i, m in enumerate(models[1:], start=1):
        if type(m) is not type(first):
            raise ValueError(
                f"models[{i}] is a {type(m).__name__}, models[0] a {type(first).__name__}: "
                "only copies of one architecture can be stacked"
            )
        got = [(k, tuple(v.shape), v.dtype) for k, v in m.state_dict().items()]
        if got != ref:
            raise ValueError(f"models[{i}] has other parameter names/shapes than models[0]")
    return models


class StackedModel:
    """Common interface: stacked tensors keyed by the per-seed ``named_parameters()`` names.

    ``params[name]`` is ``[S, *shape]`` (a leaf tensor that requires grad), ``buffers[name]``
    likewise without grad. ``forward(x)`` takes ``[S, B, C, H, W]`` and returns logits
    ``[S, B, classes]``: seed ``s`` sees only ``x[s]``.
    """

    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    training: bool = True

    @property
    def num_seeds(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def train(self, mode: bool = True) -> StackedModel:
        self.training = mode
        return self

    def eval(self) -> StackedModel:
        return self.train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    __call__ = forward

    def state_dict(self, s: int) -> dict[str, torch.Tensor]:
        """Seed ``s``'s weights as a state dict of the original per-seed model."""
        out = {k: v[s].detach().clone() for k, v in self.params.items()}
        out.update({k: v[s].detach().clone() for k, v in self.buffers.items()})
        return out

    def load_into(self, models: Sequence[nn.Module]) -> None:
        """Copy every seed's current weights back into its own ``nn.Module``."""
        if len(models) != self.num_seeds:
            raise ValueError(f"got {len(models)} models for {self.num_seeds} stacked seeds")
        for s, m in enumerate(models):
            m.load_state_dict(self.state_dict(s), strict=False)


def _stack(tensors: list[torch.Tensor], device, grad: bool) -> torch.Tensor:
    out = torch.stack([t.detach() for t in tensors]).to(device).contiguous()
    return out.requires_grad_(grad)


class _StackedLinear(torch.autograd.Function):
    """``y[s] = x[s] @ w[s]^T + b[s]`` with a backward that writes ``dL/dw`` straight in the
    ``[S, out, in]`` layout of the weights (autograd's generic backward of ``w.transpose``
    returns a transposed view, which costs a full copy per layer per step to accumulate)."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        wt = w.transpose(1, 2)
        return torch.bmm(x, wt) if b is None else torch.baddbmm(b.unsqueeze(1), x, wt)

    @staticmethod
    def backward(ctx, g):
        # Under bf16 autocast the forward ran in g's dtype; backward runs outside autocast, so
        # cast explicitly (no-ops in fp32) and hand autograd grads in the inputs' dtypes.
        x, w = ctx.saved_tensors
        gx = torch.bmm(g, w.to(g.dtype)).to(x.dtype) if ctx.needs_input_grad[0] else None
        gw = (torch.bmm(g.transpose(1, 2), x.to(g.dtype)).to(w.dtype)
              if ctx.needs_input_grad[1] else None)
        gb = g.sum(1).to(w.dtype) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


class StackedMLP(StackedModel):
    """S copies of ``spp.models.MLP``: weights ``[S, out, in]``, biases ``[S, out]``.

    Layer ``l`` is ``h = act(baddbmm(b, h, W^T))``; the activation module is shared (it is
    elementwise and stateless).
    """

    def __init__(self, models: Sequence[nn.Module], device="cpu"):
        models = _check_models(models)
        if not isinstance(models[0], MLP):
            raise ValueError(
                f"StackedMLP stacks spp.models.MLP (mlp-K-ACT, lenet300), got "
                f"{type(models[0]).__name__}; use StackedFunctional for other models"
            )
        names = [n for n, _ in models[0].named_parameters()]
        self.params = {
            n: _stack([dict(m.named_parameters())[n] for m in models], device, True)
            for n in names
        }
        self.buffers = {}
        self.act = models[0].act
        self.layers = [
            (self.params[f"layers.{i}.weight"], self.params.get(f"layers.{i}.bias"))
            for i in range(len(models[0].layers))
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2)
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            h = _StackedLinear.apply(h, w, b)
            if i < last:
                h = self.act(h)
        return h

    __call__ = forward


class StackedFunctional(StackedModel):
    """Any model, stacked with ``torch.func.vmap`` over ``functional_call``.

    Batch-norm running statistics are stacked buffers updated per seed; in training mode each
    seed's batch statistics come from its own batch only (vmap keeps seeds apart).
    """

    def __init__(self, models: Sequence[nn.Module], device="cpu"):
        models = _check_models(models)
        self.base = models[0]
        pnames = [n for n, _ in self.base.named_parameters()]
        bnames = [n for n, _ in self.base.named_buffers()]
        self.params = {
            n: _stack([dict(m.named_parameters())[n] for m in models], device, True)
            for n in pnames
        }
        self.buffers = {
            n: _stack([dict(m.named_buffers())[n] for m in models], device, False)
            for n in bnames
        }
        # A private copy supplies only the structure: functional_call swaps in the stacked
        # tensors, so the copy's own weights are never used and the caller's model is untouched.
        self.base = copy.deepcopy(self.base)

    def _call(self, params, buffers, x):
        return torch.func.functional_call(self.base, (params, buffers), (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.base.train(self.training)  # batch norm reads .training
        return torch.func.vmap(self._call, randomness="different")(self.params, self.buffers, x)

    __call__ = forward


def stack_models(models: Sequence[nn.Module], device="cpu") -> StackedModel:
    """The fastest correct stacker for ``models``: ``StackedMLP`` for MLPs, else vmap."""
    models = _check_models(models)
    if isinstance(models[0], MLP):
        return StackedMLP(models, device)
    return StackedFunctional(models, device)


# ---------------------------------------------------------------------------------- training


@torch.no_grad()
def stacked_error_rates(
    stacked: StackedModel, data, split: str, batch_size: int = 1000
) -> list[float]:
    """Top-1 error in percent of every seed on a whole split (as ``training.error_rate``)."""
    was_training = stacked.training
    stacked.eval()
    s = stacked.num_seeds
    wrong = torch.zeros(s, dtype=torch.long, device=data.device)
    for x, y in data.batches(split, batch_size):
        logits = stacked(x.unsqueeze(0).expand(s, *x.shape))
        wrong += (logits.argmax(2) != y).sum(1)
    stacked.train(was_training)
    n = len(data.y[split])
    return [100.0 * w / n if n else float("nan") for w in wrong.tolist()]


def _stacked_masks(models, masks, stacked: StackedModel, device):
    """(stacked params, float keep masks) for every name any seed masks; pruned entries zeroed.

    Gradients are *not* masked (train() masks them with hooks): every SGD operation is
    elementwise, so a pruned entry's gradient and momentum never touch a kept entry, and the
    weight is multiplied by its mask after every step as in train(). Kept weights evolve
    exactly as in train(); only the (internal) momentum of pruned entries differs. This saves
    one pass over every weight per step.
    """
    from spp.masks import apply_mask

    names: list[str] = []
    for model, mask in zip(models, masks, strict=True):
        if mask:
            apply_mask(model, mask)  # validates names/shapes and zeroes pruned weights, as train()
            names += [n for n in mask if n not in names]
    params, keeps = [], []
    for name in names:
        p = stacked.params[name]
        keep = torch.stack([
            (m[name].to(device=device, dtype=p.dtype) if m else
             torch.ones(p.shape[1:], dtype=p.dtype, device=device))
            for m in masks
        ])
        with torch.no_grad():
            p.mul_(keep)
        params.append(p)
        keeps.append(keep)
    return params, keeps


def train_stacked(
    models: Sequence[nn.Module],
    masks: Sequence[dict | None],
    data,
    cfg,
    seeds: Sequence[int],
    device="cpu",
    checkpoint_path=None,
    log=print,
    prenormalize_bytes: int = 2**30,
    fast=None,
) -> list:
    """Train ``models[s]`` under ``masks[s]`` with ``cfg`` but seed ``seeds[s]``, all at once.

    Returns one ``TrainResult`` per seed, equal (up to float rounding) to
    ``spp.training.train(models[s], masks[s], data, replace(cfg, seed=seeds[s]), device)``:
    same data order and augmentation draws (one generator per seed, drawn in train()'s order),
    same learning-rate schedule, evaluations, divergence rule and summary. The trained weights
    are written back into ``models`` (masks applied with ``spp.masks.apply_mask``, as train()).

    A seed that diverges stops being evaluated and keeps its last good metrics, exactly as
    train() would; its weights at that point are what is written back (inside the stack they
    are zeroed, so NaN arithmetic cannot slow the other seeds).
    ``checkpoint_path``: one file for the whole group (same atomic, resumable scheme as
    train(), keyed by config and seeds); the caller removes it once the outputs are written.

    ``prenormalize_bytes``: normalise the training split once when its float copy fits (same
    values, less work per step). ``fast``: an ``spp.fastpath.FastPath``; on CUDA its ``bf16``
    runs forward and loss under bf16 autocast, its cuDNN/TF32 switches hold for the run
    (ignored on CPU).
    """
    import dataclasses
    from pathlib import Path

    from spp.data import save_atomic
    from spp.fastpath import FastPath, autocast_context, cuda_flags, sgd_options
    from spp.training import (
        TrainConfig,
        TrainingInterrupted,
        TrainResult,
        _SigtermFlag,
        augment_batch,
        summarize,
    )

    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    models, masks, seeds = list(models), list(masks), list(seeds)
    if not (len(models) == len(masks) == len(seeds)) or not models:
        raise ValueError(
            f"need one mask and one seed per model, got {len(models)} models, {len(masks)} "
            f"masks, {len(seeds)} seeds"
        )
    if any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be ints, got {seeds!r}")
    device = torch.device(device)
    data = data.to(device)
    n_train = len(data.y["train"])
    if cfg.batch_size > n_train:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n_train} training examples")
    for m in models:
        m.to(device).train()
    num = len(models)
    stacked = stack_models(models, device)
    masked_params, mask_values = _stacked_masks(models, masks, stacked, device)
    # Stacked SGD == per-seed SGD: every operation of torch.optim.SGD is elementwise. The fused
    # kernel does weight decay, momentum and update in one pass (bit-identical to the default
    # implementation in our checks, 6x faster on CPU for these tensors).
    opt = torch.optim.SGD(list(stacked.params.values()), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, **sgd_options(device))
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(s)
        gens.append(g)
    xtr, ytr = data.x["train"], data.y["train"]
    bsz = cfg.batch_size
    # Normalising the whole training split once gives bit-identical batches (the normalisation
    # is elementwise) and saves a conversion pass per step; only when the float copy is small.
    xtr_float = data.normalize(xtr) if xtr.numel() * 4 <= prenormalize_bytes else None

    it, pos = 0, n_train
    perms = [torch.empty(0, dtype=torch.long, device=device)] * num
    histories: list[list[dict]] = [[] for _ in range(num)]
    diverged = [False] * num
    stopped_at = [0] * num
    loss_sum = torch.zeros(num, device=device)
    log_sum = torch.zeros(num, device=device)
    loss_n = log_n = 0

    frozen: dict[int, dict] = {}  # weights of diverged seeds as train() would leave them
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    saved_at = -1
    fmt = "spp-stacked-checkpoint/1"
    ref_cfg = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("log_every", "seed")}

    def save_checkpoint():
        nonlocal saved_at
        if ckpt is None or saved_at == it:
            return
        saved_at = it
        save_atomic({
            "format": fmt, "config": ref_cfg, "seeds": seeds, "iteration": it,
            "params": {k: v.detach() for k, v in stacked.params.items()},
            "buffers": stacked.buffers, "optimizer": opt.state_dict(),
            "generators": [g.get_state() for g in gens], "perms": perms, "pos": pos,
            "loss_sum": loss_sum, "loss_n": loss_n, "log_sum": log_sum, "log_n": log_n,
            "histories": histories, "diverged": diverged, "stopped_at": stopped_at,
            "frozen": frozen,
        }, ckpt)

    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("format") != fmt:
            raise ValueError(f"{ckpt}: not a stacked training checkpoint; delete it to start "
                             "afresh")
        if state["config"] != ref_cfg or list(state["seeds"]) != seeds:
            raise ValueError(f"{ckpt}: checkpoint of another configuration or seeds "
                             f"({state['config']}, seeds {state['seeds']}); delete it to start "
                             "afresh")
        with torch.no_grad():
            for k, v in stacked.params.items():
                v.copy_(state["params"][k])
            for k, v in stacked.buffers.items():
                v.copy_(state["buffers"][k])
        opt.load_state_dict(state["optimizer"])
        for g, st in zip(gens, state["generators"], strict=True):
            g.set_state(st.cpu())
        it, pos, loss_n, log_n = state["iteration"], state["pos"], state["loss_n"], state["log_n"]
        perms, loss_sum, log_sum = list(state["perms"]), state["loss_sum"], state["log_sum"]
        histories = [list(h) for h in state["histories"]]
        diverged, stopped_at = list(state["diverged"]), list(state["stopped_at"])
        frozen.update(state["frozen"])
        saved_at = it
        log(f"[train-stacked] resumed from {ckpt} at iteration {it}/{cfg.iterations}")

    def freeze(s):
        # A diverged seed: keep its weights as train() would leave them, then zero them and
        # their momentum so NaN/inf arithmetic cannot slow the group down.
        frozen[s] = stacked.state_dict(s)
        with torch.no_grad():
            for p in stacked.params.values():
                p[s] = 0.0
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf[s] = 0.0

    lr_now = None
    t_last, it_last = time.perf_counter(), it
    with cuda_flags(device, fast or FastPath()), _SigtermFlag() as sigterm:
        while it < cfg.iterations and not all(diverged):
            if pos + bsz > n_train:  # new epoch: each seed draws its own permutation
                perms = [torch.randperm(n_train, generator=g, device=device) for g in gens]
                pos = 0
            idx = torch.cat([p[pos:pos + bsz] for p in perms])  # seed-major [S * B]
            pos += bsz
            # index_select: the same rows as x[idx], 5x faster than advanced indexing on CPU
            if xtr_float is not None:
                x = xtr_float.index_select(0, idx)
            else:
                x = data.normalize(xtr.index_select(0, idx))
            x = x.view(num, bsz, *x.shape[1:])  # [S, B, C, H, W]
            if cfg.augment:
                x = torch.stack([augment_batch(x[s], g, cfg.translate_px)
                                 for s, g in enumerate(gens)])
            if cfg.lr_at(it) != lr_now:
                lr_now = cfg.lr_at(it)
                for group in opt.param_groups:
                    group["lr"] = lr_now
            with autocast_context(device, fast is not None and fast.bf16):
                logits = stacked(x)
                per_example = F.cross_entropy(logits.flatten(0, 1), ytr.index_select(0, idx),
                                              reduction="none").float()
            losses = per_example.view(num, bsz).mean(1)  # each seed's own mean loss
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # d(sum)/d(theta_s) = d(loss_s)/d(theta_s)
            opt.step()
            if masked_params:
                with torch.no_grad():
                    torch._foreach_mul_(masked_params, mask_values)
            losses = losses.detach()
            loss_sum += losses
            log_sum += losses
            loss_n += 1
            log_n += 1
            it += 1

            newly = []
            if it % cfg.log_every == 0 or it == cfg.iterations:
                means = (log_sum / log_n).tolist()  # the only host sync between evaluations
                now = time.perf_counter()
                rate = (it - it_last) / max(now - t_last, 1e-9)
                live = [m for m, d in zip(means, diverged, strict=True) if not d]
                log(f"[train-stacked] iter {it}/{cfg.iterations} seeds {num} loss "
                    f"{' '.join(f'{m:.4f}' for m in live)} lr {lr_now:.4g} {rate:.1f} it/s "
                    f"({rate * len(live):.1f} seed-it/s)")
                t_last, it_last = now, it
                log_sum.zero_()
                log_n = 0
                newly = [s for s in range(num) if not diverged[s] and not math.isfinite(means[s])]
            if it % cfg.eval_every == 0 or it == cfg.iterations:
                train_losses = (loss_sum / loss_n).tolist()
                newly += [s for s in range(num) if not diverged[s] and s not in newly
                          and not math.isfinite(train_losses[s])]
                for s in newly:
                    diverged[s], stopped_at[s] = True, it
                live = [s for s in range(num) if not diverged[s]]
                if live:
                    val = stacked_error_rates(stacked, data, "val", cfg.eval_batch_size)
                    test = stacked_error_rates(stacked, data, "test", cfg.eval_batch_size)
                    for s in live:
                        histories[s].append({"iteration": it, "train_loss": train_losses[s],
                                             "val_error": val[s], "test_error": test[s]})
                    log(f"[eval] iter {it} " + "; ".join(
                        f"seed {seeds[s]} val_error {val[s]:.2f}% test_error {test[s]:.2f}%"
                        for s in live))
                    t_last = time.perf_counter()
                loss_sum.zero_()
                loss_n = 0
            else:
                for s in newly:
                    diverged[s], stopped_at[s] = True, it
            for s in newly:
                log(f"[train-stacked] seed {seeds[s]}: loss is not finite at iteration {it}: "
                    "diverged; keeping its last good evaluation")
                freeze(s)
            if cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
                save_checkpoint()
            if sigterm.raised:
                save_checkpoint()
                raise TrainingInterrupted(it, str(ckpt) if ckpt else None)
        save_checkpoint()

    stacked.load_into(models)
    for s, state in frozen.items():
        models[s].load_state_dict(state, strict=False)
    return [
        TrainResult(summary=summarize(histories[s], diverged[s],
                                      stopped_at[s] if diverged[s] else it),
                    history=histories[s])
        for s in range(num)
    ]
