"""The losses whose sensitivity connection sensitivity measures (Lee et al. 2020, Sec. 5.2).

Every loss is a mean over the examples of the batch: the original code takes
``reduce_mean`` of the per-example cross-entropy before differentiating, and sums the
per-batch gradients over the split. Names (``LOSSES``):

- ``supervised``: cross-entropy against the one-hot labels (the paper's "GT").
- ``unif``: cross-entropy against the uniform distribution over classes; as in the
  original's ``fake_uniform`` target, no label is used.
- ``pred-softmax``: cross-entropy against the batch-averaged softmax prediction,
  ``t = mean_b softmax(z_b)``, treated as a constant target (detached).
- ``pred-raw``: the same with the batch-averaged raw logits ``t = mean_b z_b`` as the
  target, exactly as TensorFlow's ``softmax_cross_entropy_with_logits`` would take them
  (``-sum_k t_k log softmax(z)_k``; ``t`` is not a distribution). The public code of the
  paper does not contain the two "Pred." losses; this is our reading of Section 5.2.
- ``jac-l1`` / ``jac-l2``: a norm of each example's input-output Jacobian
  ``J_b = d z_b / d x_b`` (logits w.r.t. the input, ``[classes, input size]``), averaged over
  the batch: ``jac-l1`` the entrywise L1 norm ``sum_ij |J_ij|``, ``jac-l2`` the Frobenius
  (entrywise L2, unsquared) norm. The paper names ``||J||_1`` and ``||J||_2`` without
  defining them; entrywise norms are the ones that are cheap and differentiable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k target_k log softmax(logits)_k``."""
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def supervised(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def uniform(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return _soft_cross_entropy(logits, torch.full_like(logits, 1.0 / logits.shape[1]))


def prediction_raw(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    target = logits.detach().mean(dim=0, keepdim=True).expand_as(logits)
    return _soft_cross_entropy(logits, target)


def prediction_softmax(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    target = F.softmax(logits.detach(), dim=1).mean(dim=0, keepdim=True).expand_as(logits)
    return _soft_cross_entropy(logits, target)


def input_jacobian(model: nn.Module, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """Per-example Jacobians ``[batch, classes, input size]`` of the logits w.r.t. ``x``.

    One backward pass per class on the summed logits: each example's logits depend on
    that example's input only (eval mode), so the gradient of ``sum_b z_bk`` w.r.t. ``x_b``
    is row ``k`` of ``J_b``. ``create_graph`` keeps it differentiable w.r.t. the weights.
    """
    x = x.detach().requires_grad_(True)
    logits = model(x)
    rows = [
        torch.autograd.grad(logits[:, k].sum(), x, create_graph=create_graph, retain_graph=True)[0]
        for k in range(logits.shape[1])
    ]
    return torch.stack(rows, dim=1).flatten(start_dim=2)


def jacobian_l1(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return input_jacobian(model, x, create_graph=True).abs().sum(dim=(1, 2)).mean()


def jacobian_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(input_jacobian(model, x, create_graph=True), dim=(1, 2)).mean()


LOSSES: dict[str, LossFn] = {
    "supervised": supervised,
    "unif": uniform,
    "pred-raw": prediction_raw,
    "pred-softmax": prediction_softmax,
    "jac-l1": jacobian_l1,
    "jac-l2": jacobian_l2,
}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise ValueError(f"unknown pruning loss {name!r}; valid losses: {', '.join(LOSSES)}")
    return LOSSES[name]
