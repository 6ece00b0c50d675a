"""GraSP (Wang et al., ICLR 2020): keep the weights whose removal hurts gradient flow the most.

Wang et al. approximate the change of the gradient norm when weight vector ``theta`` moves by
``delta`` as ``2 delta^T H g`` (``g`` the loss gradient, ``H`` its Hessian). Removing weight ``q``
is ``delta_q = -theta_q``, so their score is ``S = -theta * (H g)``, and their Algorithm 1 (and
their public code) *removes* the top fraction of ``S`` -- the weights whose removal increases
gradient flow, or reduces it least -- and keeps the lowest ``S``. Frankle et al. (2021) evaluate
exactly that rule ("GraSP prunes the weights with the highest scores").

This library's scores are "higher = keep" (``spp.pruning.masks.global_mask`` keeps the top), so the
``grasp`` method returns ``-S = theta * (H g)``: ``global_mask`` then keeps the lowest ``S`` as Wang
et al. do, and the ``invert`` ablation keeps the highest ``S``.

Details settled by Wang et al.'s code (the paper leaves them open):

- ``g`` is the gradient of the loss summed over the scoring batches (each batch's mean
  cross-entropy), computed first and detached; then, over the same batches again,
  ``z = g^T grad(L)`` with a graph, ``H g = grad(z)`` (double backprop), summed over batches.
- The logits are divided by a temperature ``T = 200`` before the cross-entropy (``temperature``).
- Batch norm in train mode (batch statistics): their code deep-copies the net and leaves the
  ``.eval()`` call commented out. We score a deep copy too, so the caller's running statistics
  are untouched; ``bn_mode="eval"`` is available.
- They use a class-balanced sample of 10 (CIFAR-10) to 25 images per class; here the scoring data
  is whatever ``batches`` yields (``max_batches`` caps it), chosen by the caller.
- Their code also re-draws every linear layer with Xavier-normal before scoring; we do not (that
  would change the initialization under study).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from spp.nets.models import prunable_parameters
from spp.pruning.scores import register

BN_MODES = ("train", "eval")


def hessian_gradient_product(
    model: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    params: list[torch.Tensor],
    temperature: float = 200.0,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(g, Hg)`` for ``L = sum_b CE(model(x_b) / T, y_b)`` w.r.t. ``params``.

    Two passes over ``batches`` as in Wang et al.: first ``g`` (detached), then ``H g`` as the
    gradient of ``z = g^T grad(L)`` (double backprop), accumulated batch by batch.
    """
    g = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        loss = F.cross_entropy(model(x) / temperature, y)
        for acc, gi in zip(g, torch.autograd.grad(loss, params), strict=True):
            acc += gi
    hg = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        loss = F.cross_entropy(model(x) / temperature, y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        z = sum((gi * fi).sum() for gi, fi in zip(g, grads, strict=True))
        for acc, hi in zip(hg, torch.autograd.grad(z, params), strict=True):
            acc += hi
    return g, hg


@register("grasp")
def grasp_scores(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
    *,
    temperature: float = 200.0,
    bn_mode: str = "train",
    max_batches: int | None = None,
) -> dict[str, torch.Tensor]:
    """GraSP keep-scores ``theta * (H g)`` (= ``-S`` of Wang et al.; higher = keep).

    ``batches`` is consumed once and held in memory (``g`` and ``H g`` need two passes), so give
    it the scoring sample only, or cap it with ``max_batches``.
    """
    if batches is None:
        raise ValueError("grasp needs scoring data: batches=None; pass an iterable of (x, y)")
    if bn_mode not in BN_MODES:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; valid: {', '.join(BN_MODES)}")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if max_batches is not None and not (isinstance(max_batches, int) and max_batches >= 1):
        raise ValueError(f"max_batches must be None or an int >= 1, got {max_batches!r}")

    data = []
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        data.append(batch)
    if not data:
        raise ValueError("grasp got no scoring batches (the iterable was empty)")

    work = copy.deepcopy(model)
    work.train(bn_mode == "train")
    named = prunable_parameters(work, biases=False)
    params = list(named.values())
    for p in work.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    _, hg = hessian_gradient_product(work, data, params, float(temperature))
    return {
        name: (p.detach() * h).to(p.dtype)
        for (name, p), h in zip(named.items(), hg, strict=True)
    }
