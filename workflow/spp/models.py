"""Architectures of the paper, built by name.

Every model is a plain ``nn.Module`` made of ``nn.Linear`` / ``nn.Conv2d`` / ``nn.BatchNorm2d`` so
that parameter names are stable: masks and scores are dicts keyed by those names and are saved to
disk, so a name must mean the same weight in every run.

Names (``build_model(arch, ...)``):

- ``mlp-K-ACT``: K weight layers, hidden width 100, ACT in ``ACTIVATIONS`` (input flattened).
- ``lenet300``: LeNet-300-100 (in-300-100-out), activation default relu.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import nn

ARCHITECTURES: tuple[str, ...] = ("mlp-K-ACT", "lenet300")

# Activation names. lrelu uses slope 0.2, TensorFlow's tf.nn.leaky_relu default, as the original.
ACTIVATIONS: tuple[str, ...] = ("linear", "tanh", "relu", "lrelu", "selu")
LRELU_SLOPE = 0.2
MLP_WIDTH = 100


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (``ACTIVATIONS``)."""
    if name == "linear":
        return nn.Identity()
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "lrelu":
        return nn.LeakyReLU(LRELU_SLOPE)
    if name == "selu":
        return nn.SELU()
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


class MLP(nn.Module):
    """Fully connected net: flatten, then ``len(widths) - 1`` linear layers with biases.

    The activation follows every layer but the last (the logits).
    """

    def __init__(self, widths: list[int], activation: str):
        super().__init__()
        make_activation(activation)  # validate before building
        self.activation_name = activation
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=True) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


def _check_shape(input_shape, num_classes) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in shape):
        raise ValueError(f"input_shape must be (C, H, W) of positive ints, got {input_shape!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return shape  # type: ignore[return-value]


def _build_mlp(m: re.Match, shape, num_classes, activation, width) -> nn.Module:
    depth, act = int(m.group(1)), m.group(2)
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r} in {m.group(0)!r}; valid: {ACTIVATIONS}")
    if activation is not None and activation != act:
        raise ValueError(
            f"activation={activation!r} contradicts the activation in the name {m.group(0)!r}"
        )
    if depth < 1:
        raise ValueError(f"an MLP needs K >= 1 weight layers, got {m.group(0)!r}")
    hidden = max(1, round(MLP_WIDTH * width))
    return MLP([math.prod(shape)] + [hidden] * (depth - 1) + [num_classes], act)


def _build_lenet300(m, shape, num_classes, activation, width) -> nn.Module:
    act = activation or "relu"
    h1, h2 = max(1, round(300 * width)), max(1, round(100 * width))
    return MLP([math.prod(shape), h1, h2, num_classes], act)


# (pattern, builder): first full match wins.
_REGISTRY: list[tuple[re.Pattern, Callable[..., nn.Module]]] = [
    (re.compile(r"mlp-(\d+)-([a-z]+)"), _build_mlp),
    (re.compile(r"lenet300"), _build_lenet300),
]


def build_model(
    arch: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    activation: str | None = None,
    width: float = 1.0,
) -> nn.Module:
    """Build architecture ``arch`` for inputs of ``input_shape`` (C, H, W) and ``num_classes``.

    ``activation`` (``ACTIVATIONS``; conv nets: relu, tanh, lrelu, selu) defaults to relu;
    for ``mlp-K-ACT`` it is read from the name. ``width`` multiplies every hidden width.
    Weights are left at torch defaults: call ``spp.initialize`` next.
    """
    shape = _check_shape(input_shape, num_classes)
    if not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if not isinstance(arch, str):
        raise ValueError(f"arch must be a string, got {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    for pattern, builder in _REGISTRY:
        m = pattern.fullmatch(arch)
        if m:
            return builder(m, shape, num_classes, activation, float(width))
    raise ValueError(
        f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)} "
        "(e.g. mlp-7-tanh, resnet20, resnet32, wrn-16-8)"
    )


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every ``nn.Linear`` / ``nn.Conv2d`` weight, in model order, keyed as in named_parameters().

    First, last and shortcut layers included (as in the original code).
    """
    weights = {
        id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))
    }
    return {name: p for name, p in model.named_parameters() if id(p) in weights}
