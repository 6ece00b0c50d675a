"""Approximate isometry (Lee et al. 2020, eq. 8) and the orthogonality score (Sec. 5.1).

For a weight ``W`` of shape ``[out, in]`` or ``[out, in, kh, kw]``, ``W_m = (C * W)`` is
flattened to ``[out, in*kh*kw]`` and ``G = W_m W_m^T`` (``out x out``). This is the
original code's ``W^T W`` in TensorFlow's ``[in, out]`` / ``[kh, kw, in, out]`` layout: the
Gram matrix of the output units, for every linear and conv layer (784x100 first layer
included: its Gram is 100x100). The deviation is ``||G - I||_F``, unsquared.
"""

from __future__ import annotations

import torch
from torch import nn

from spp.nets.models import prunable_parameters
from spp.pruning.masks import check_mask, weights_only


def gram_deviation(weight: torch.Tensor) -> torch.Tensor:
    """``||W W^T - I||_F`` with ``W`` flattened to ``[out, -1]`` (differentiable)."""
    w = weight.reshape(weight.shape[0], -1)
    eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    return torch.linalg.matrix_norm(w @ w.T - eye)


def _weights(model: nn.Module, mask: dict | None) -> dict[str, nn.Parameter]:
    """The weights a Gram is taken of (biases have none; the original's keys with a ``w``)."""
    weights = (prunable_parameters(model, biases=False) if mask is None
               else weights_only(check_mask(model, mask)))
    if not weights:
        raise ValueError(f"{type(model).__name__} has no linear or conv layer: no Gram matrix to "
                         "take")
    return weights


def orthogonality_score(model: nn.Module, mask: dict[str, torch.Tensor] | None = None) -> float:
    """Mean over weight layers of ``||G_l - I||_F``; ``mask`` (if given) is applied first."""
    weights = _weights(model, mask)
    with torch.no_grad():
        devs = [
            gram_deviation(p if mask is None else p * mask[name].to(p.device, p.dtype))
            for name, p in weights.items()
        ]
    return float(torch.stack(devs).mean())


def approximate_isometry(
    model: nn.Module, mask: dict[str, torch.Tensor] | None, steps: int = 10_000, lr: float = 0.1
) -> nn.Module:
    """Minimise ``sum_l ||G_l - I||_F`` over the kept weights by plain gradient descent.

    As in the original (TF ``GradientDescentOptimizer``, lr 0.1, 10k steps, no early stop):
    data-free, all prunable layers at once, biases untouched. Pruned entries are set to
    zero first and get zero gradient, so they stay exactly zero. ``mask=None``: dense.
    The norm is unsquared, so near the optimum the step does not shrink; the iterate ends
    within about ``lr`` of it, as the original's does.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    weights = _weights(model, mask)
    names, params = list(weights), list(weights.values())
    keeps = [
        torch.ones_like(p, dtype=torch.bool) if mask is None else mask[n].to(p.device, torch.bool)
        for n, p in zip(names, params, strict=True)
    ]
    # Optimise detached copies: no hooks, no .grad on the model, one write-back at the end.
    ws = [p.detach().masked_fill(~k, 0.0) for p, k in zip(params, keeps, strict=True)]
    for _ in range(steps):
        with torch.enable_grad():
            leaves = [w.requires_grad_(True) for w in ws]
            total = torch.stack([gram_deviation(w) for w in leaves]).sum()
            grads = torch.autograd.grad(total, leaves)
        ws = [
            (w.detach() - lr * g).masked_fill_(~k, 0.0)
            for w, g, k in zip(ws, grads, keeps, strict=True)
        ]
    with torch.no_grad():
        for p, w in zip(params, ws, strict=True):
            p.copy_(w)
    return model
