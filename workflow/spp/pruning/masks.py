"""Global top-k masks, and applying them so pruned weights stay exactly zero.

A mask is a dict from parameter name (as in ``model.named_parameters()``) to a bool tensor
of the parameter's shape; ``True`` = kept. It covers every prunable weight and, under Lee et
al.'s protocol, every bias of those layers too (``prunable_parameters``); a mask without bias
entries (OpenLTH's protocol: ``weights_only``) leaves the biases dense and trainable.
"""

from __future__ import annotations

import torch
from torch import nn

from spp.nets.models import prunable_parameters
from spp.pruning.keep import check_sparsity, kept_count

__all__ = ["apply_mask", "check_mask", "global_mask", "keep_all", "kept_count", "layer_sparsity",
           "weights_only"]

# apply_mask stores its gradient-hook handles here, {name: RemovableHandle}, so re-applying
# a mask replaces the previous hooks instead of stacking them.
HOOKS_ATTR = "_spp_mask_hooks"


def global_mask(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Keep the ``round(n * (1 - sparsity))`` highest scores over all layers together.

    Ties are broken deterministically by position: among equal scores, the one that comes
    first (in dict order, then flattened index) is kept. NaN scores are rejected.
    """
    sparsity = check_sparsity(sparsity)
    if not isinstance(scores, dict) or not scores:
        raise ValueError("scores must be a non-empty dict {parameter name: tensor}")
    for name, s in scores.items():
        if not isinstance(s, torch.Tensor):
            raise ValueError(f"score for {name!r} is not a tensor: {type(s).__name__}")
        if torch.isnan(s).any():
            raise ValueError(f"score for {name!r} contains NaN")
    device = next(iter(scores.values())).device
    flat = torch.cat([s.detach().reshape(-1).to(device=device, dtype=torch.float64)
                      for s in scores.values()])
    n = flat.numel()
    keep = int(round(n * (1.0 - sparsity)))
    order = torch.sort(flat, descending=True, stable=True).indices
    kept = torch.zeros(n, dtype=torch.bool, device=device)
    kept[order[:keep]] = True
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = kept[start:start + s.numel()].reshape(s.shape).to(s.device)
        start += s.numel()
    return masks


def keep_all(model: nn.Module) -> dict[str, torch.Tensor]:
    """The dense network's mask: every prunable parameter kept (a table's `dense` rows, Figure
    2's Dense lines), on the parameters' device."""
    return {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()}


def weights_only(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weight entries of a score or mask dict (biases are its 1-D entries)."""
    return {k: v for k, v in tensors.items() if v.dim() > 1}


def check_mask(model: nn.Module, mask: dict[str, torch.Tensor]) -> dict[str, nn.Parameter]:
    """The parameters ``mask`` covers, after checking it covers every prunable weight, and
    either every prunable bias or none."""
    if not isinstance(mask, dict):
        raise ValueError(f"mask must be a dict {{parameter name: bool tensor}}, got {type(mask)}")
    prunable = prunable_parameters(model)
    only_weights = prunable_parameters(model, biases=False)
    biases = [k for k in prunable if k not in only_weights]
    weights = prunable if any(k in mask for k in biases) else only_weights
    unknown = [k for k in mask if k not in weights]
    missing = [k for k in weights if k not in mask]
    if unknown or missing:
        raise ValueError(
            f"mask does not match the model's prunable parameters: unknown names {unknown}, "
            f"missing names {missing}; prunable: {list(prunable)} (the biases all or none)"
        )
    bad = [
        f"{k}: mask {tuple(m.shape)} vs weight {tuple(weights[k].shape)}"
        for k, m in mask.items()
        if not isinstance(m, torch.Tensor) or m.shape != weights[k].shape
    ]
    if bad:
        raise ValueError(f"mask shapes do not match the weights: {'; '.join(bad)}")
    not_binary = [
        k for k, m in mask.items() if m.dtype != torch.bool and ((m != 0) & (m != 1)).any()
    ]
    if not_binary:
        raise ValueError(f"mask entries must be bool or 0/1; not so for {not_binary}")
    return weights


def apply_mask(model: nn.Module, mask: dict[str, torch.Tensor]) -> nn.Module:
    """Zero pruned weights in place and keep them exactly zero under later optimisation.

    A gradient hook multiplies each weight's gradient by its mask, so a pruned weight gets
    a zero gradient; with a zero weight, a zero gradient and zero optimiser state, every
    elementwise optimiser (SGD with momentum and weight decay, Adam, AdamW, ...) leaves it
    at zero. The hooks live on the parameters; their handles are kept in
    ``model._spp_mask_hooks`` and replaced when a mask is applied again. Re-apply after
    loading a state dict into a fresh model, and after ``copy.deepcopy`` (hooks are neither
    in the state dict nor carried by a deep copy, whose weights would train freely).
    """
    weights = check_mask(model, mask)
    for handle in getattr(model, HOOKS_ATTR, {}).values():
        handle.remove()
    handles = {}
    for name, p in weights.items():
        keep = mask[name].to(device=p.device, dtype=torch.bool)
        with torch.no_grad():
            p.masked_fill_(~keep, 0.0)
        handles[name] = p.register_hook(_masking_hook(keep))
    # A plain dict attribute: not a buffer, so the state dict stays unchanged.
    object.__setattr__(model, HOOKS_ATTR, handles)
    return model


def _masking_hook(keep: torch.Tensor):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(~keep.to(grad.device), 0.0)

    return hook


def layer_sparsity(mask: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of pruned weights per weight layer (the paper's per-layer sparsity; bias entries
    are left out), in the mask's (= model) order."""
    return {name: 1.0 - m.to(torch.bool).sum().item() / max(1, m.numel())
            for name, m in weights_only(mask).items()}
