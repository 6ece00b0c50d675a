"""GPU fast path: bf16 autocast, channels-last, cuDNN autotuning and torch.compile, on CUDA only.

Every helper here is a no-op on CPU (it returns its input, or a null context), so the training
code calls them unconditionally and CPU runs stay bit-for-bit what they were. On CUDA:

- ``autocast_context``: bf16 autocast for the forward pass and loss. bf16 keeps fp32's exponent
  range, so unlike fp16 it needs no loss scaling, and the optimiser, its momentum and the master
  weights stay fp32 (autocast casts per op; parameters are never stored in bf16). Masks are
  unaffected: pruned weights are zero in fp32 and a cast of zero is zero.
  *What it was compared against:* ``benchmarks/gpu_fastpath.py`` trains ResNet-32 on the shipped
  CIFAR-10 subset with the same seed, data order and augmentation in fp32 and in bf16 and prints
  the difference of training loss and test error after N steps, next to the seed-to-seed spread
  in fp32. **No GPU was available when this was written: that comparison has not been run yet**;
  until its figures are in ``benchmarks/README.md`` treat bf16 as unvalidated and keep
  ``bf16=False`` for runs that feed tables.
- ``prepare_model`` / ``to_device_batch``: channels-last memory format for conv nets (cuDNN's
  fast NHWC kernels, Tensor Cores with bf16). A memory-format change only, numerically identical
  up to kernel choice. MLPs are left alone.
- ``cuda_flags``, a context around the whole run (the switches are process-wide, so they are
  restored after): ``cudnn.benchmark`` (autotune conv algorithms for the fixed batch shape) and
  TF32 for the fp32 matmuls/convs that remain outside autocast. TF32 rounds the
  mantissa of products to 10 bits, so it is part of the fast path, not of the fp32 reference.
- ``compile_model``: ``torch.compile`` (Inductor fuses BN + activation + elementwise work; mode
  "max-autotune-no-cudagraphs" by default, or "reduce-overhead" for CUDA graphs, which pay off
  for small models where kernel-launch latency dominates). Compilation costs tens of seconds, so
  it is worth it for 100k-iteration runs, not for tests; off by default.

- ``cuda_graph``: the whole training step (forward, loss, backward, SGD, mask) captured once as
  a CUDA graph on static batch buffers and replayed each step (``spp.train.graph_step``): one launch
  instead of hundreds of small kernels. Off by default; ignored on CPU.

``FastPath`` bundles the switches so a config section (``train.fast: {bf16: ..., compile: ...}``)
maps onto one object; ``FastPath.for_device(device)`` is the recommended default (everything but
compile on CUDA, nothing on CPU).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")  # they make CUDA graphs themselves


def _is_cuda(device) -> bool:
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def bf16_supported(device) -> bool:
    """True on a CUDA device with native bf16 (Ampere or newer)."""
    return _is_cuda(device) and torch.cuda.is_bf16_supported()


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass(frozen=True)
class FastPath:
    """Which fast-path features to use; all of them are ignored on CPU."""

    bf16: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    tf32: bool = False
    compile: bool = False
    compile_mode: str = "max-autotune-no-cudagraphs"
    cuda_graph: bool = False

    def __post_init__(self):
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"unknown compile_mode {self.compile_mode!r}; valid: {', '.join(COMPILE_MODES)}"
            )
        if self.cuda_graph and self.compile and self.compile_mode in _GRAPHING_COMPILE_MODES:
            raise ValueError(f"cuda_graph captures the whole step; compile_mode "
                             f"{self.compile_mode!r} makes CUDA graphs of its own inside it: use "
                             "'default' or 'max-autotune-no-cudagraphs'")

    @classmethod
    def for_device(cls, device, compile: bool = False) -> FastPath:
        """Recommended switches: all (compile optional) on CUDA, none on CPU."""
        if not _is_cuda(device):
            return cls()
        return cls(bf16=bf16_supported(device), channels_last=True, cudnn_benchmark=True,
                   tf32=True, compile=compile)

    @property
    def enabled(self) -> bool:
        return any((self.bf16, self.channels_last, self.cudnn_benchmark, self.tf32, self.compile,
                    self.cuda_graph))


@contextlib.contextmanager
def cuda_flags(device, fast: FastPath):
    """cuDNN autotuning / TF32 for the duration of a run, restored afterwards (they are
    process-wide switches: a later fp32 reference run in the same process must not inherit
    TF32). No-op on CPU."""
    if not _is_cuda(device):
        yield
        return
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    try:
        if fast.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        if fast.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved


def prepare_model(model: nn.Module, device, fast: FastPath | None = None) -> nn.Module:
    """Move ``model`` to ``device``; on CUDA, channels-last for conv nets when asked.

    In place (returns the same module), so masks' gradient hooks and optimisers built on its
    parameters stay valid. Call before building the optimiser.
    """
    fast = fast or FastPath()
    model.to(device)
    if _is_cuda(device) and fast.channels_last and has_conv(model):
        model.to(memory_format=torch.channels_last)
    return model


def to_device_batch(x: torch.Tensor, device, fast: FastPath | None = None) -> torch.Tensor:
    """A 4-D image batch in channels-last layout on CUDA when asked; unchanged otherwise."""
    fast = fast or FastPath()
    if fast.channels_last and x.dim() == 4 and x.is_cuda:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def autocast_context(device, enabled: bool = True):
    """bf16 autocast on CUDA (forward + loss only; backward runs in the ops' autocast dtypes);
    a null context on CPU or when disabled or unsupported."""
    if enabled and bf16_supported(device):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_model(model: nn.Module, device, fast: FastPath | None = None):
    """``torch.compile(model)`` on CUDA when ``fast.compile``; the model itself otherwise.

    The compiled wrapper shares parameters with ``model`` (state dicts, masks and checkpoints
    keep using ``model``); only the forward/backward go through the wrapper.
    """
    fast = fast or FastPath()
    if not (fast.compile and _is_cuda(device)):
        return model
    return torch.compile(model, mode=fast.compile_mode)


def sgd_options(device) -> dict:
    """``fused=True`` for torch.optim.SGD where this torch build has the fused kernel: one pass
    over each tensor instead of a Python loop of small ops, with bit-identical results."""
    try:
        torch.optim.SGD([torch.zeros(1, device=device, requires_grad=True)], lr=0.1, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return {}
    return {"fused": True}
