"""Every architecture name and init scheme the library builds, torch-free.

The Snakefile checks a config against these names while it parses, in a controller that may have
Snakemake alone (``spp.pruning.catalog`` says why). The builders are in ``spp.nets.models``, one
per family here; a test checks that the two lists agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

ACTIVATIONS: tuple[str, ...] = ("linear", "tanh", "relu", "lrelu", "selu")
INIT_SCHEMES: tuple[str, ...] = (
    "vs-lecun",
    "vs-glorot",
    "vs-he",
    "sg",
    "orthogonal",
    "kaiming-normal",
)
VGG_DEPTHS: tuple[int, ...] = (11, 13, 16, 19)  # OpenLTH's cifar-vgg-N plans (spp.nets.lth_models)


def _resnet_depth(m: re.Match) -> bool:
    return int(m.group(1)) >= 8 and (int(m.group(1)) - 2) % 6 == 0


@dataclass(frozen=True)
class Family:
    """One family of architecture names: its pattern and which of its names the config may use
    (the builder raises the detailed error)."""

    name: str
    pattern: re.Pattern
    valid: Callable[[re.Match], bool] = lambda m: True


# First full match wins. A new network is one entry here and its builder in spp.nets.models.
FAMILIES: tuple[Family, ...] = (
    Family(
        "mlp-K-ACT",
        re.compile(r"mlp-(\d+)-([a-z]+)"),
        lambda m: int(m.group(1)) >= 1 and m.group(2) in ACTIVATIONS,
    ),
    Family("lenet300", re.compile(r"lenet300")),
    Family("vgg16", re.compile(r"vgg16")),
    Family("resnetD", re.compile(r"resnet(\d+)"), _resnet_depth),
    # Any 6n+4 depth builds; the paper's tables (and so the config check) use WRN-16 only.
    Family(
        "wrn-16-k",
        re.compile(r"wrn-(\d+)-(\d+)"),
        lambda m: m.group(1) == "16" and int(m.group(2)) >= 1,
    ),
    # Frankle et al. 2021's networks, by their OpenLTH names (spp.nets.lth_models).
    Family("cifar-resnet-N", re.compile(r"cifar-resnet-(\d+)"), _resnet_depth),
    Family("cifar-vgg-N", re.compile(r"cifar-vgg-(\d+)"), lambda m: int(m.group(1)) in VGG_DEPTHS),
    Family("mnist-lenet-N1-N2", re.compile(r"mnist-lenet-(\d+(?:-\d+)*)")),
    Family("tiny-resnet-18", re.compile(r"tiny-resnet-18")),
)
ARCHITECTURES: tuple[str, ...] = tuple(f.name for f in FAMILIES)
NAMES_HELP = (
    "mlp-K-ACT (ACT in linear/tanh/relu/lrelu/selu), lenet300, vgg16, resnetD "
    "(D = 6n+2, e.g. resnet20, resnet32), wrn-16-k (e.g. wrn-16-6); OpenLTH's "
    "cifar-resnet-N (e.g. cifar-resnet-20), cifar-vgg-N (11/13/16/19), "
    "mnist-lenet-N1-N2 (e.g. mnist-lenet-300-100), tiny-resnet-18"
)


MLP_WIDTH = 100  # hidden units of every mlp-K-ACT layer at width 1 (the paper's MLPs)


def dense_widths(arch: str, input_shape, num_classes: int, width: float = 1.0) -> list[int] | None:
    """Unit counts of a fully connected net's layers, input to logits (``mlp-K-ACT``,
    ``lenet300``); None for any other architecture. ``spp.nets.models`` builds them from it."""
    n_in = math.prod(input_shape)
    m = re.fullmatch(r"mlp-(\d+)-[a-z]+", str(arch))
    if m:
        return [n_in] + [max(1, round(MLP_WIDTH * width))] * (int(m.group(1)) - 1) + [num_classes]
    if arch == "lenet300":
        return [n_in, max(1, round(300 * width)), max(1, round(100 * width)), num_classes]
    return None


def resnet_widths(width: float) -> list[int]:
    """Channels of a CIFAR ResNet's three groups (``resnetD``: 16, 32, 64 at width 1)."""
    return [max(1, round(c * width)) for c in (16, 32, 64)]


def prunable_count(arch: str, input_shape, num_classes: int, width: float = 1.0) -> int | None:
    """Prunable weights and biases of ``arch`` counted from its plan, without building it: the
    fully connected nets and ``resnetD`` (Figure 3 sculpts these; the Snakefile needs the counts
    while it parses). None for the others (build them: ``spp.tables.experiments.count_prunable``).
    """
    dense = dense_widths(arch, input_shape, num_classes, width)
    if dense is not None:
        return sum(a * b + b for a, b in zip(dense[:-1], dense[1:], strict=False))
    m = re.fullmatch(r"resnet(\d+)", str(arch))
    if not m or not _resnet_depth(m):
        return None
    widths, blocks = resnet_widths(width), (int(m.group(1)) - 2) // 6
    n = input_shape[0] * widths[0] * 9  # the stem conv (no bias; batch norm is not pruned)
    cin = widths[0]
    for cout in widths:
        for _ in range(blocks):  # two 3x3 convs a block; zero-pad shortcuts have no weights
            n += cin * cout * 9 + cout * cout * 9
            cin = cout
    return n + cin * num_classes + num_classes  # the classifier, with its bias


def match(arch: str) -> tuple[Family, re.Match] | None:
    """The first family whose pattern matches ``arch`` in full, valid or not."""
    for f in FAMILIES:
        m = f.pattern.fullmatch(str(arch))
        if m:
            return f, m
    return None


def arch_family(arch: str) -> str:
    """The family in ARCHITECTURES an architecture name belongs to; ValueError if none."""
    for f in FAMILIES:
        m = f.pattern.fullmatch(str(arch))
        if m and f.valid(m):
            return f.name
    raise ValueError(f"unknown architecture {arch!r}; valid: {NAMES_HELP}")
