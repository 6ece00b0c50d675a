"""SynFlow (Tanaka et al., NeurIPS 2020): iterative, data-free pruning by synaptic flow.

Each round scores the network with every parameter and buffer replaced by its absolute value,
batch norm in eval mode, and an all-ones input: ``R = sum(f(1))`` and the synaptic saliency
``S = |w * dR/dw|`` of every (still kept) weight. Then the global top ``(1-s)^(k/n)`` of the
weights is kept, ``k = 1..n`` (``n = 100`` rounds), so the sparsity grows exponentially to ``s``
and a weight once pruned stays pruned (its effective weight is zero, so its saliency is zero and
it is excluded). Everything runs on a deep copy of the model, so the caller's weights keep their
signs.

SynFlow yields a *mask*, not one-shot scores. To plug into the score interface, the ``synflow``
score method needs ``sparsity=`` and returns the final round's saliencies with the weights pruned
in earlier rounds set to ``-inf``; since every round selects with ``spp.pruning.masks.global_mask``,
``global_mask(scores, sparsity)`` reproduces the iterative mask exactly (same count, same
tie-break). Scores of another sparsity are not meaningful: rescore.

``invert=True`` keeps the *lowest* saliencies at every round (Frankle et al.'s inversion
ablation of an iterative method); the returned scores are then negated saliencies, -inf as above.

Numerics: the product of absolute weights over depth can overflow or underflow float32 in deep
nets, so rounds run in float64 by default (``double=False`` for Tanaka et al.'s float32).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from spp.nets.models import prunable_parameters
from spp.pruning.masks import global_mask
from spp.pruning.scores import register


def synaptic_saliency(
    model: nn.Module, input_shape: tuple[int, ...], mask: dict[str, torch.Tensor] | None = None
) -> tuple[dict[str, torch.Tensor], float]:
    """One SynFlow round on ``model`` as is (caller linearizes): ``({name: |w dR/dw|}, R)``.

    ``mask`` multiplies the prunable weights in the forward pass, so pruned weights score 0.
    """
    named = prunable_parameters(model, biases=False)
    params = list(named.values())
    for p in model.parameters():
        p.requires_grad_(False)
    originals = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            if mask is not None:
                for (name, p) in named.items():
                    p.mul_(mask[name].to(p.dtype))
        for p in params:
            p.requires_grad_(True)
        p0 = params[0]
        ones = torch.ones((1, *input_shape), dtype=p0.dtype, device=p0.device)
        r = model(ones).sum()
        grads = torch.autograd.grad(r, params)
        scores = {
            name: (p.detach() * g).abs() for (name, p), g in zip(named.items(), grads, strict=True)
        }
    finally:
        with torch.no_grad():
            for p, o in zip(params, originals, strict=True):
                p.copy_(o)
                p.requires_grad_(False)
    return scores, float(r.detach())


def linearized_copy(model: nn.Module, double: bool = True) -> nn.Module:
    """A deep copy with every floating parameter and buffer replaced by its absolute value, eval."""
    work = copy.deepcopy(model)
    if double:
        work = work.double()
    with torch.no_grad():
        for t in list(work.parameters()) + list(work.buffers()):
            if t.is_floating_point():
                t.abs_()
    return work.eval()


def _check(sparsity, iterations) -> None:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"synflow needs sparsity= a number in [0, 1), got {sparsity!r}")
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")


def _input_shape(model, batches, input_shape) -> tuple[int, ...]:
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    if batches is not None:
        for x, _ in batches:
            return tuple(x.shape[1:])
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(shape)
    raise ValueError(
        "synflow needs the input shape: pass input_shape=(C, H, W) or batches to read it from"
    )


def synflow_rounds(
    model: nn.Module,
    sparsity: float,
    input_shape: tuple[int, ...],
    iterations: int = 100,
    double: bool = True,
    invert: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[float]]:
    """Run the schedule; returns ``(final-round keep-scores, mask, R per round)``.

    Round ``k`` keeps the global top ``(1 - sparsity)^(k / iterations)`` of the round's scores
    (saliencies, or negated saliencies if ``invert``), weights pruned before scoring ``-inf``.
    """
    _check(sparsity, iterations)
    work = linearized_copy(model, double=double)
    weights = prunable_parameters(work, biases=False)
    names = list(weights)
    mask = {n: torch.ones_like(p, dtype=torch.bool) for n, p in weights.items()}
    flows: list[float] = []
    density = 1.0 - float(sparsity)
    keep_scores: dict[str, torch.Tensor] = {}
    for k in range(1, iterations + 1):
        saliency, r = synaptic_saliency(work, input_shape, mask)
        flows.append(r)
        keep_scores = {}
        for n in names:
            s = -saliency[n] if invert else saliency[n]
            keep_scores[n] = s.masked_fill(~mask[n], float("-inf"))
        round_sparsity = sparsity if k == iterations else 1.0 - density ** (k / iterations)
        mask = {n: m.to(torch.bool) for n, m in global_mask(keep_scores, round_sparsity).items()}
    return keep_scores, mask, flows


@register("synflow")
def synflow_scores(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    *,
    sparsity: float | None = None,
    iterations: int = 100,
    input_shape: tuple[int, ...] | None = None,
    double: bool = True,
    invert: bool = False,
) -> dict[str, torch.Tensor]:
    """SynFlow keep-scores for target ``sparsity``: final-round saliencies, earlier-pruned -inf.

    Data-free: ``batches`` is only read (one batch) for the input shape when ``input_shape`` is
    not given. ``global_mask(scores, sparsity)`` equals the iterative mask.
    """
    _check(sparsity, iterations)
    shape = _input_shape(model, batches, input_shape)
    # Kept in the rounds' dtype (float64 by default): casting down could merge distinct scores
    # into ties and let global_mask's tie-break pick a different mask than the rounds did.
    scores, _, _ = synflow_rounds(model, float(sparsity), shape, iterations, double, invert)
    return scores
