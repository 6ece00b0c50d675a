"""Initialization schemes of the paper (Section 4 / Table 2), applied in place, seeded.

All Gaussians are untruncated, as in the original code. Fans: linear ``fan_in = in_features``,
``fan_out = out_features``; conv ``fan_in = c_in*kh*kw``, ``fan_out = c_out*kh*kw``.

- ``vs-lecun``  N(0, 1/fan_in)
- ``vs-glorot`` N(0, 2/(fan_in + fan_out))
- ``vs-he``     N(0, 2/fan_in)
- ``sg``        N(0, gamma), gamma the *variance* (reproduces Table 1's Jacobian means)
- ``orthogonal`` layerwise dynamical isometry (LDI): linear layers Haar-orthogonal (QR with sign
  fix; semi-orthogonal when non-square), conv layers the convolution-orthogonal kernels of
  Xiao et al. 2018 (see ``spp.nets._conv_orthogonal``).

- ``kaiming-normal`` OpenLTH's (Frankle et al. 2021): weights N(0, 2/fan_in) as ``vs-he``, but
  biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and batch-norm scales are
  drawn U(0, 1) (OpenLTH's ``kaiming_normal`` and ``uniform`` batch-norm initialisers).

Otherwise biases are zero; batch-norm scale 1, shift 0. Running statistics are always reset.
Randomness comes from a
local ``torch.Generator`` seeded with ``seed`` and consumed layer by layer in model order, so the
same seed gives the same weights whatever the global RNG state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spp.nets._conv_orthogonal import conv_orthogonal_kernel, orthogonal_matrix
from spp.nets.catalog import INIT_SCHEMES

__all__ = ["INIT_SCHEMES", "fans", "initialize"]


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear ``[out, in]`` or conv ``[out, in, kh, kw]`` weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _variance(scheme: str, weight: torch.Tensor, gamma: float | None) -> float:
    fan_in, fan_out = fans(weight)
    if scheme == "vs-lecun":
        return 1.0 / fan_in
    if scheme == "vs-glorot":
        return 2.0 / (fan_in + fan_out)
    if scheme in ("vs-he", "kaiming-normal"):
        return 2.0 / fan_in
    assert scheme == "sg" and gamma is not None
    return gamma


def _sample(scheme: str, weight: torch.Tensor, gamma, gen: torch.Generator) -> torch.Tensor:
    if scheme == "orthogonal":
        if weight.dim() == 2:
            return orthogonal_matrix(weight.shape[0], weight.shape[1], gen)
        out, cin, kh, kw = weight.shape
        return conv_orthogonal_kernel(out, cin, kh, kw, gen)
    std = math.sqrt(_variance(scheme, weight, gamma))
    return torch.randn(weight.shape, generator=gen, dtype=torch.float64) * std


def initialize(model: nn.Module, scheme: str, seed: int | None = None,
               gamma: float | None = None) -> nn.Module:
    """Initialize every linear/conv weight of ``model`` in place with ``scheme``; returns it.

    ``gamma`` is the variance for ``sg`` (required, > 0) and must be None otherwise.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")
    if scheme == "sg":
        if gamma is None or isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            raise ValueError(f"scheme 'sg' needs gamma (the variance, > 0), got gamma={gamma!r}")
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be a finite variance > 0, got gamma={gamma!r}")
    elif gamma is not None:
        raise ValueError(f"gamma={gamma!r} is only used by scheme 'sg', not {scheme!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"initialize needs seed=<int> (the same seed gives the same weights), "
                         f"got seed={seed!r}")

    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    # Sampling runs on the CPU (same weights whatever the model's device) and is many small
    # QRs/matmuls: one thread is fastest, and on a loaded machine multi-threaded LAPACK spins
    # 10-1000x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _initialize_modules(model, scheme, gamma, gen)
    finally:
        torch.set_num_threads(threads)
    return model


def _initialize_modules(model, scheme, gamma, gen) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                w = module.weight
                w.copy_(_sample(scheme, w, gamma, gen).to(dtype=w.dtype, device=w.device))
                if module.bias is None:
                    continue
                if scheme == "kaiming-normal":  # torch's default bias init, from our generator
                    bound = 1.0 / math.sqrt(fans(w)[0])
                    b = (torch.rand(module.bias.shape, generator=gen, dtype=torch.float64) * 2
                         - 1) * bound
                    module.bias.copy_(b.to(dtype=w.dtype, device=w.device))
                else:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                if module.affine:
                    if scheme == "kaiming-normal":
                        u = torch.rand(module.weight.shape, generator=gen, dtype=torch.float64)
                        module.weight.copy_(u.to(dtype=module.weight.dtype,
                                                 device=module.weight.device))
                    else:
                        module.weight.fill_(1.0)
                    module.bias.zero_()
