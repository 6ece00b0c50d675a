"""Connection sensitivity (SNIP), random and magnitude scores, registered in ``spp.pruning.scores``.

Connection sensitivity (Lee et al. 2019, eq. 1 of Lee et al. 2020) is ``|g|`` with
``g = dL(c * w)/dc`` at ``c = 1``, which is ``dL/dw * w``. As in the authors' code, ``g`` is
accumulated (signed) over every batch of the given data, each batch contributing the
gradient of its batch-mean loss, and the absolute value is taken once at the end. We return
``|g|`` unnormalised: the paper's division by ``sum |g|`` does not change the ranking.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from spp.nets.models import prunable_parameters
from spp.pruning.scores import register
from spp.train.losses import get_loss

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class _EvalMode:
    """Put every submodule in eval mode and restore each one's previous mode afterwards."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc) -> None:
        for m, training in self.modes:
            m.training = training


@register("snip")
def connection_sensitivity(
    model: nn.Module, batches: Batches | None, loss: str = "supervised"
) -> dict[str, torch.Tensor]:
    """``|sum over batches of dL/dw * w|`` for every prunable weight, in eval mode.

    ``batches`` (e.g. ``data.batches("train", 100)``) is consumed once. Gradients are taken
    with ``torch.autograd.grad``, so no ``.grad`` is left on the model and no weight changes.
    """
    loss_fn = get_loss(loss)
    if batches is None:
        raise ValueError("score method 'snip' needs data: pass batches=data.batches(split, 100)")
    weights = prunable_parameters(model)
    names, params = list(weights), list(weights.values())
    needed = [p.requires_grad for p in params]
    g = [torch.zeros_like(p) for p in params]
    seen = 0
    try:
        for p in params:
            p.requires_grad_(True)
        with _EvalMode(model), torch.enable_grad():
            for x, y in batches:
                value = loss_fn(model, x, y)
                grads = torch.autograd.grad(value, params, allow_unused=True)
                for acc, grad, p in zip(g, grads, params, strict=True):
                    if grad is not None:
                        acc.add_(grad.detach() * p.detach())
                seen += 1
    finally:
        for p, flag in zip(params, needed, strict=True):
            p.requires_grad_(flag)
    if seen == 0:
        raise ValueError("score method 'snip' got no batches (empty data iterator)")
    return {name: acc.abs() for name, acc in zip(names, g, strict=True)}


@register("random")
def random_scores(
    model: nn.Module, batches: Batches | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """I.i.d. uniform scores from a generator seeded with ``seed``: global random pruning."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"random scores need an int seed, got {seed!r}")
    gen = torch.Generator().manual_seed(seed)
    return {
        name: torch.rand(p.shape, generator=gen, dtype=torch.float32).to(p.device)
        for name, p in prunable_parameters(model).items()
    }


@register("magnitude")
def magnitude_scores(model: nn.Module, batches: Batches | None = None) -> dict[str, torch.Tensor]:
    """``|w|``: magnitude pruning of the weights as they are (at init, or after training)."""
    return {name: p.detach().abs().clone() for name, p in prunable_parameters(model).items()}
