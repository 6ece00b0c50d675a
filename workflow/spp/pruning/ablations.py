"""Mask ablations of Frankle et al. (2021): does a method's per-weight choice matter?

Each ablation keeps something of a pruning result and randomizes the rest:

- ``none``: the mask as is.
- ``shuffle``: per layer, the kept *positions* are redrawn uniformly at random (the layer's mask
  entries are permuted), so each layer keeps exactly as many weights as before, elsewhere. The
  kept weights then take the initial values found at their new positions. (Popular reference code
  permutes the masked weight tensor, zeros included, or shuffles across layers; this permutes the
  mask within the layer, which is the definition.)
- ``reinit``: the mask as is, fresh weights: the model is re-initialized in place with the same
  scheme and a different ``seed`` (the caller then applies the mask as usual).
- ``invert``: keep the *lowest*-scoring weights instead of the highest, the same global count:
  ``global_mask`` of the negated scores (no ``1/score``, so no division by zero and exact ranks).
  Scores with ``-inf`` (SynFlow's iterative output) cannot be inverted after the fact; rescore with
  ``synflow``'s ``invert=True`` instead, which inverts every round.

Magnitude after training needs no ablation code: it is the ``magnitude`` score of a trained state.
"""

from __future__ import annotations

import torch
from torch import nn

from spp.pruning.catalog import ABLATIONS
from spp.pruning.masks import global_mask

__all__ = ["ABLATIONS", "ablate", "collapsed_layers"]


def _check_mask(mask) -> None:
    if not isinstance(mask, dict) or not mask:
        raise ValueError(f"mask must be a non-empty dict name -> bool tensor, got {type(mask)!r}")
    for name, m in mask.items():
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            raise ValueError(f"mask[{name!r}] must be a bool tensor, got {getattr(m, 'dtype', m)}")


def shuffle_mask(mask: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Permute each layer's mask entries uniformly at random (one generator, model order)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    out = {}
    for name, m in mask.items():
        perm = torch.randperm(m.numel(), generator=gen).to(m.device)
        out[name] = m.flatten()[perm].reshape(m.shape)
    return out


def invert_mask(
    mask: dict[str, torch.Tensor], scores: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Keep the lowest-scoring weights, as many (globally) as ``mask`` keeps."""
    if set(scores) != set(mask):
        raise ValueError(
            "scores and mask name different layers: only in scores "
            f"{sorted(set(scores) - set(mask))}, only in mask {sorted(set(mask) - set(scores))}"
        )
    for name, s in scores.items():
        if s.shape != mask[name].shape:
            raise ValueError(
                f"scores[{name!r}] has shape {tuple(s.shape)}, mask {tuple(mask[name].shape)}"
            )
        if not torch.isfinite(s).all():
            raise ValueError(
                f"scores[{name!r}] has non-finite values (an iterative method's output?): "
                "inversion needs finite scores; for synflow rescore with invert=True"
            )
    total = sum(m.numel() for m in mask.values())
    kept = int(sum(int(m.sum()) for m in mask.values()))
    inverted = global_mask({n: -s for n, s in scores.items()}, (total - kept) / total)
    got = sum(int(m.sum()) for m in inverted.values())
    if got != kept:  # global_mask rounds round(n * (1 - sparsity)); guard the float round trip
        raise RuntimeError(f"inverted mask keeps {got} weights, the original keeps {kept}")
    return {n: inverted[n].to(torch.bool) for n in mask}


def ablate(
    mask: dict[str, torch.Tensor],
    how: str,
    *,
    scores: dict[str, torch.Tensor] | None = None,
    model: nn.Module | None = None,
    init: str | None = None,
    seed: int,
    gamma: float | None = None,
) -> dict[str, torch.Tensor]:
    """Apply ablation ``how`` (``ABLATIONS``); returns the mask to train with.

    ``shuffle`` uses ``seed``; ``invert`` needs the ``scores`` the mask came from; ``reinit``
    re-initializes ``model`` in place with scheme ``init`` (and ``gamma`` for ``sg``) and
    ``seed`` -- pass a seed different from the original init's.
    """
    if how not in ABLATIONS:
        raise ValueError(f"unknown ablation {how!r}; valid: {', '.join(ABLATIONS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    _check_mask(mask)
    if how == "none":
        return {n: m.clone() for n, m in mask.items()}
    if how == "shuffle":
        return shuffle_mask(mask, seed)
    if how == "invert":
        if scores is None:
            raise ValueError("ablation 'invert' needs scores= (the scores the mask came from)")
        return invert_mask(mask, scores)
    # reinit
    if model is None or init is None:
        raise ValueError("ablation 'reinit' needs model= and init= (the init scheme name)")
    from spp.nets.initializers import initialize

    initialize(model, init, seed, gamma)
    return {n: m.clone() for n, m in mask.items()}


def collapsed_layers(mask: dict[str, torch.Tensor]) -> list[str]:
    """Layers with every weight pruned (layer collapse: the network is disconnected), in order.

    A run with a collapsed layer is a result (it trains to chance), recorded, not an error.
    """
    return [name for name, m in mask.items() if not bool(m.any())]
