"""Singular values of the input-output Jacobian over a data split (Lee et al. 2020, Table 1).

For every example ``x_b``, ``J_b = d logits / d x_b`` (``[classes, input size]``); the
statistics are over all singular values of all examples together, as in the original code
(per-example SVD, then mean / std (population) / max / min of the concatenation; condition
number ``max / min``, ``inf`` when the smallest is 0).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.func import jacrev

from spp.pruning.sensitivity import _EvalMode

# Largest per-chunk Jacobian, in elements (~128 MB of float32): bounds memory for big
# inputs and many classes (Tiny-ImageNet: 200 x 12288 per example).
_MAX_CHUNK_ELEMENTS = 1 << 25


def batch_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[batch, classes, input size]`` Jacobians of the logits w.r.t. each example's input.

    In eval mode each example's logits depend on its own input only, so the Jacobian of
    ``sum_b logits_b`` w.r.t. the whole batch holds every example's Jacobian: one
    vectorised reverse pass per class (``torch.func.jacrev``), no loop over examples.
    """
    jac = jacrev(lambda inp: model(inp).sum(dim=0))(x)  # [classes, batch, *input]
    return jac.transpose(0, 1).flatten(start_dim=2)


def jacobian_singular_values(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Mean, std, max, min and condition number of the Jacobian singular values.

    ``batches`` yields ``(x, y)`` (``y`` ignored), e.g. ``data.batches("train", 100)``, of any
    size (they are re-batched); runs in eval mode (restored after) without touching the
    weights or their gradients. Jacobians and SVDs in the model's dtype (float32, as the
    original), statistics accumulated in float64.
    """
    values: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    with _EvalMode(model), torch.no_grad():
        # Re-batch into large chunks: each jacrev call has a fixed cost (~0.1 s on CPU), so
        # the caller's batches of 100 would cost minutes on 54k examples; chunks take seconds.
        chunk = 0
        for x, _ in batches:
            x = x.detach()
            if not chunk:
                per_example = max(1, x[0].numel() * model(x[:1]).shape[1])
                chunk = max(1, _MAX_CHUNK_ELEMENTS // per_example)
            pending.append(x)
            if sum(len(p) for p in pending) >= chunk:
                values.extend(_chunk_values(model, torch.cat(pending), chunk))
                pending = []
        if pending:
            values.extend(_chunk_values(model, torch.cat(pending), chunk))
    if not values:
        raise ValueError("jacobian_singular_values got no batches (empty data iterator)")
    s = torch.cat(values).double()
    smax, smin = s.max().item(), s.min().item()
    return {
        "mean": s.mean().item(),
        "std": s.std(correction=0).item(),
        "max": smax,
        "min": smin,
        "condition_number": smax / smin if smin > 0 else float("inf"),
    }


def _singular_values(jac: torch.Tensor) -> torch.Tensor:
    # LAPACK is ~50x faster on tall than on wide matrices (10x784: 5 s vs 0.1 s per 1000
    # examples); J and J^T have the same singular values.
    return torch.linalg.svdvals(jac.mT if jac.shape[1] < jac.shape[2] else jac)


def _chunk_values(model: nn.Module, x: torch.Tensor, chunk: int) -> list[torch.Tensor]:
    return [_singular_values(batch_jacobian(model, part)).reshape(-1) for part in x.split(chunk)]
