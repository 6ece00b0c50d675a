"""Seed stacking: S seeds of one table cell trained in one process as one stacked computation.

Why: the paper's MNIST-scale runs (7-layer width-100 MLPs, LeNet-300-100, batch 100) are so small
that one seed cannot keep a device busy; per-step overhead (Python, kernel launches, optimizer
bookkeeping) dominates. Stacking S seeds turns S small matrix multiplies into one batched multiply
(``torch.baddbmm`` on ``[S, out, in]`` weights) and S optimizer steps into one elementwise update
on the stacked tensors, so the overhead is paid once per step instead of S times.

Each seed keeps everything that makes it a separate run: its own initial weights (built with
``spp.nets.initializers`` on its own ``nn.Module`` and stacked here), its own mask, its own data
order and augmentation, its own loss, metrics, history and divergence flag. The loss of the stacked
model is the *sum* of the per-seed mean losses, so each seed's gradient is exactly its own gradient;
SGD with momentum and weight decay is elementwise, so the stacked update equals S separate
updates. Results equal training the seeds one by one up to float rounding (batched and single
matrix multiplies may sum in a different order); ``tests/test_stacked.py`` checks this against
``spp.train.training.train``.

Two stackers:

- ``StackedMLP``: ``spp.nets.models.MLP`` (``mlp-K-ACT``, ``lenet300``), the fast path: a
  hand-written forward and backward (batched multiplies, in-place activations, the ATen backward
  kernels autograd itself uses) into buffers allocated once, so a step allocates nothing. On CPU
  that matters more than it seems: every fresh multi-megabyte tensor is fresh pages from the
  kernel, and dropping the autograd step's ~10 MB of allocations made the step 1.25x faster
  (``benchmarks/README.md``).
- ``StackedFunctional``: any other model (conv nets, batch norm) through ``torch.func.vmap`` over
  ``functional_call`` with stacked parameters and buffers. It is correct for every architecture;
  whether it is *faster* than separate runs depends on the model and device (measure with
  ``benchmarks/stacked_seeds.py``); the workflow stacks where it wins (MLPs).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spp.nets.models import LRELU_SLOPE, MLP, prunable_parameters
from spp.train.fastpath import FastPath, autocast_context, cuda_flags, sgd_options
from spp.train.train_loop import inputs_fingerprint, run_training
from spp.train.training import TrainConfig, augment_batch, on_device, param_groups


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
    # Keep masks (float, ``[S, *shape]``) by parameter name; gradients are multiplied by them.
    grad_masks: dict[str, torch.Tensor]

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

    def losses_and_grads(self, x: torch.Tensor, y: torch.Tensor,
                         bf16: bool = False) -> torch.Tensor:
        """One training step's gradients: each seed's mean cross-entropy on its own batch
        (``x`` ``[S, B, ...]``, labels ``y`` ``[S * B]``), returned detached as ``[S]``, with
        ``d loss_s / d theta_s`` left in ``params[name].grad[s]`` and pruned entries zeroed.

        The loss of the stack is the *sum* of the per-seed losses, so each seed's gradient is
        exactly its own. This generic version is autograd through ``forward``; ``bf16`` runs
        forward and loss under CUDA bf16 autocast (``spp.train.fastpath``).
        """
        s = self.num_seeds
        with autocast_context(x.device, bf16):
            per_example = F.cross_entropy(self(x).flatten(0, 1), y, reduction="none").float()
        losses = per_example.view(s, -1).mean(1)
        for p in self.params.values():
            p.grad = None
        losses.sum().backward()
        if self.grad_masks:
            names = list(self.grad_masks)
            torch._foreach_mul_([self.params[n].grad for n in names],
                                [self.grad_masks[n] for n in names])
        return losses.detach()

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


# Each MLP activation applied in place, and its derivative computed from its *output* (all are
# monotone, so the output determines the slope) by the ATen kernel autograd itself uses, written
# into the incoming gradient. SELU's constants are torch.nn.SELU's.
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805
_aten = torch.ops.aten
_ACTIVATIONS = {
    "linear": (lambda a: a, lambda g, y: g),
    "tanh": (lambda a: torch.tanh(a, out=a),
             lambda g, y: _aten.tanh_backward.grad_input(g, y, grad_input=g)),
    "relu": (torch.relu_,
             lambda g, y: _aten.threshold_backward.grad_input(g, y, 0, grad_input=g)),
    "lrelu": (lambda a: F.leaky_relu_(a, LRELU_SLOPE),
              lambda g, y: _aten.leaky_relu_backward.grad_input(g, y, LRELU_SLOPE, True,
                                                                grad_input=g)),
    "selu": (torch.selu_,
             lambda g, y: _aten.elu_backward.grad_input(g, _SELU_ALPHA, _SELU_SCALE, 1.0, True, y,
                                                        grad_input=g)),
}


class StackedMLP(StackedModel):
    """S copies of ``spp.nets.models.MLP``: weights ``[S, out, in]``, biases ``[S, out]``.

    Layer ``l`` is ``h = act(baddbmm(b, h, W^T))``. ``forward`` is plain differentiable tensor
    code (evaluation, tests); training steps go through ``losses_and_grads``, a hand-written
    backward into preallocated buffers, checked against autograd in ``tests/test_stacked.py``.
    """

    def __init__(self, models: Sequence[nn.Module], device="cpu"):
        models = _check_models(models)
        if not isinstance(models[0], MLP):
            raise ValueError(
                f"StackedMLP stacks spp.nets.models.MLP (mlp-K-ACT, lenet300), got "
                f"{type(models[0]).__name__}; use StackedFunctional for other models"
            )
        names = [n for n, _ in models[0].named_parameters()]
        self.params = {
            n: _stack([dict(m.named_parameters())[n] for m in models], device, True)
            for n in names
        }
        self.buffers = {}
        self.grad_masks = {}
        self.act = models[0].act
        self.act_name = models[0].activation_name
        self.layer_names = [(f"layers.{i}.weight", f"layers.{i}.bias")
                            for i in range(len(models[0].layers))]
        self._work: dict = {}  # step buffers, by batch shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2)
        last = len(self.layer_names) - 1
        for i, (wn, bn) in enumerate(self.layer_names):
            w, b = self.params[wn], self.params.get(bn)
            wt = w.transpose(1, 2)
            h = torch.bmm(h, wt) if b is None else torch.baddbmm(b.unsqueeze(1), h, wt)
            if i < last:
                h = self.act(h)
        return h

    __call__ = forward

    def _buffers_for(self, x: torch.Tensor) -> dict:
        """Activations, backward scratch and gradients for batches shaped like ``x``, made once
        (the step then writes into them; nothing is allocated per step)."""
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self._work:
            s, b = x.shape[:2]
            ws = [self.params[wn] for wn, _ in self.layer_names]
            self._work = {key: {
                # acts[l + 1]: layer l's output (post-activation; logits for the last layer)
                "acts": [None] + [x.new_empty(s, b, w.shape[1]) for w in ws],
                "dx": [None] + [x.new_empty(s, b, w.shape[2]) for w in ws[1:]],
                "minus_one": x.new_full((s, b, 1), -1.0),
            }}
            for p in self.params.values():
                p.grad = torch.zeros_like(p)
        return self._work[key]

    def losses_and_grads(self, x, y, bf16=False):
        """The generic step, computed by hand: fp32 always (``bf16`` falls back to autograd)."""
        if bf16 and x.is_cuda:
            return super().losses_and_grads(x, y, bf16)
        s, b = x.shape[:2]
        work = self._buffers_for(x)
        acts, dx = work["acts"], work["dx"]
        act, act_backward = _ACTIVATIONS[self.act_name]
        masks = self.grad_masks
        with torch.no_grad():
            for p in self.params.values():
                if p.grad is None:  # the generic step (or a caller) dropped them
                    p.grad = torch.zeros_like(p)
            h = acts[0] = x.reshape(s, b, -1)
            last = len(self.layer_names) - 1
            for i, (wn, bn) in enumerate(self.layer_names):
                w, bias = self.params[wn], self.params.get(bn)
                wt = w.transpose(1, 2)
                if bias is None:
                    h = torch.bmm(h, wt, out=acts[i + 1])
                else:
                    h = torch.baddbmm(bias.unsqueeze(1), h, wt, out=acts[i + 1])
                if i < last:
                    act(h)
            # mean cross-entropy per seed; its gradient w.r.t. the logits: (softmax - onehot) / B
            labels = y.view(s, b, 1)
            g = torch.log_softmax(h, 2)
            losses = g.gather(2, labels).view(s, b).mean(1).neg_()
            g.exp_().scatter_add_(2, labels, work["minus_one"]).div_(b)
            for i in range(last, -1, -1):
                wn, bn = self.layer_names[i]
                w, bias = self.params[wn], self.params.get(bn)
                torch.bmm(g.transpose(1, 2), acts[i], out=w.grad)
                if bias is not None:
                    torch.sum(g, 1, out=bias.grad)
                for n in (wn, bn):
                    if n in masks:
                        self.params[n].grad.mul_(masks[n])
                if i:
                    g = act_backward(torch.bmm(g, w, out=dx[i]), acts[i])
        return losses


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
        self.grad_masks = {}
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


def _set_masks(models, masks, stacked: StackedModel, device) -> None:
    """Zero every pruned weight and give the stack its keep masks (``grad_masks``).

    Pruned weights start at zero and their gradients are masked, so SGD (weight decay, momentum:
    all elementwise, all zero there) keeps them at exactly zero: the same as train()'s gradient
    hooks plus its multiply after each step, without a pass over the weights per step.
    """
    from spp.pruning.masks import apply_mask

    names: list[str] = []
    for model, mask in zip(models, masks, strict=True):
        if mask:
            apply_mask(model, mask)  # validates names/shapes and zeroes pruned weights, as train()
            names += [n for n in mask if n not in names]
    stacked.grad_masks = {}
    for name in names:
        p = stacked.params[name]
        keep = torch.stack([
            (m[name].to(device=device, dtype=p.dtype) if m else
             torch.ones(p.shape[1:], dtype=p.dtype, device=device))
            for m in masks
        ])
        with torch.no_grad():
            p.mul_(keep)
        stacked.grad_masks[name] = keep


class StackedStepper:
    """S seeds as one stack, for ``spp.train.train_loop.run_training``: S runs in one step.

    Owns the stack, its one optimiser (stacked SGD == per-seed SGD: every operation of
    torch.optim.SGD is elementwise; the fused kernel does weight decay, momentum and update in
    one pass, bit-identical to the default in our checks and 6x faster on CPU here) and the
    weights of diverged seeds (``frozen``), written back by ``write_back``.
    """

    name = "train-stacked"
    per_seed_logs = True

    def __init__(self, models: list[nn.Module], masks: list[dict | None], data, cfg, device,
                 prenormalize_bytes: int, bf16: bool):
        for m in models:
            m.to(device).train()
        self.models, self.masks, self.data, self.cfg, self.bf16 = models, masks, data, cfg, bf16
        self.stacked = stack_models(models, device)
        _set_masks(models, masks, self.stacked, device)
        decayed = set(prunable_parameters(models[0]))
        self.optimizer = torch.optim.SGD(
            param_groups(dict(self.stacked.params), decayed, cfg), lr=cfg.lr,
            momentum=cfg.momentum, **sgd_options(device))
        self.frozen: dict[int, dict] = {}  # weights of diverged seeds as train() leaves them
        xtr, ytr = data.x["train"], data.y["train"]
        # Normalising the whole training split once gives bit-identical batches (normalising is
        # elementwise) and saves a conversion pass per step; only when the float copy is small.
        self.x_float = data.normalize(xtr) if xtr.numel() * 4 <= prenormalize_bytes else None
        n = len(models) * cfg.batch_size
        self.x_buf = (self.x_float.new_empty(n, *xtr.shape[1:]) if self.x_float is not None
                      else None)
        self.y_buf = ytr.new_empty(n)

    def inputs_fingerprint(self) -> str:
        return inputs_fingerprint([m.state_dict() for m in self.models], self.masks, self.data)

    def step(self, indices, generators) -> torch.Tensor:
        cfg, data, num = self.cfg, self.data, len(self.models)
        idx = torch.cat(indices)  # seed-major [S * B]
        # index_select: the same rows as x[idx], 5x faster than advanced indexing on CPU;
        # into buffers made once, since fresh megabytes per step cost page faults on CPU
        if self.x_float is not None:
            x = torch.index_select(self.x_float, 0, idx, out=self.x_buf)
        else:
            x = data.normalize(data.x["train"].index_select(0, idx))
        x = x.view(num, cfg.batch_size, *x.shape[1:])  # [S, B, C, H, W]
        if cfg.augment:
            x = torch.stack([augment_batch(x[s], g, cfg.translate_px, cfg.augmentation)
                             for s, g in enumerate(generators)])
        y = torch.index_select(data.y["train"], 0, idx, out=self.y_buf)
        losses = self.stacked.losses_and_grads(x, y, bf16=self.bf16)
        self.optimizer.step()
        return losses

    def error_rates(self, split: str) -> list[float]:
        return stacked_error_rates(self.stacked, self.data, split, self.cfg.eval_batch_size)

    def stop(self, run: int) -> None:
        # Keep the diverged seed's weights as train() would leave them, then zero them and
        # their momentum so NaN/inf arithmetic cannot slow the group down.
        self.frozen[run] = self.stacked.state_dict(run)
        with torch.no_grad():
            for p in self.stacked.params.values():
                p[run] = 0.0
                buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf[run] = 0.0

    def state_dict(self) -> dict:
        return {"params": {k: v.detach() for k, v in self.stacked.params.items()},
                "buffers": self.stacked.buffers, "frozen": self.frozen}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for k, v in self.stacked.params.items():
                v.copy_(state["params"][k])
            for k, v in self.stacked.buffers.items():
                v.copy_(state["buffers"][k])
        self.frozen = dict(state["frozen"])

    def write_back(self) -> None:
        """Every seed's weights into its own module: the stack's, or a diverged seed's frozen."""
        self.stacked.load_into(self.models)
        for s, state in self.frozen.items():
            self.models[s].load_state_dict(state, strict=False)


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
    ``spp.train.training.train(models[s], masks[s], data, replace(cfg, seed=seeds[s]), device)``:
    the same loop (``spp.train.train_loop.run_training``: data order, schedule, evaluations,
    divergence rule, summary) drives a ``StackedStepper`` instead of one module. The trained
    weights are written back into ``models`` (masks applied with
    ``spp.pruning.masks.apply_mask``, as train()).

    A seed that diverges stops being evaluated and keeps its last good metrics, exactly as
    train() would; its weights at that point are what is written back (inside the stack they
    are zeroed, so NaN arithmetic cannot slow the other seeds).
    ``checkpoint_path``: one file for the whole group (same atomic, resumable scheme as
    train(), keyed by config and seeds); the caller removes it once the outputs are written.

    ``prenormalize_bytes``: normalise the training split once when its float copy fits (same
    values, less work per step). ``fast``: an ``spp.train.fastpath.FastPath``; on CUDA its ``bf16``
    runs forward and loss under bf16 autocast, its cuDNN/TF32 switches hold for the run
    (ignored on CPU).
    """
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
    device, data, n_train = on_device(data, cfg, device)
    stepper = StackedStepper(models, masks, data, cfg, device, prenormalize_bytes,
                             bf16=fast is not None and fast.bf16)
    with cuda_flags(device, fast or FastPath()):
        results = run_training(stepper, cfg, seeds, n_train, device, checkpoint_path, log)
    stepper.write_back()
    return results
