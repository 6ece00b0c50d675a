"""Architectures of the paper, built by name.

Every model is a plain ``nn.Module`` made of ``nn.Linear`` / ``nn.Conv2d`` / ``nn.BatchNorm2d`` so
that parameter names are stable: masks and scores are dicts keyed by those names and are saved to
disk, so a name must mean the same weight in every run.

Names (``build_model(arch, ...)``):

- ``mlp-K-ACT``: K weight layers, hidden width 100, ACT in ``ACTIVATIONS`` (input flattened).
- ``lenet300``: LeNet-300-100 (in-300-100-out), activation default relu (as the original).
- ``vgg16``: the VGG-C variant of the authors' code (1x1 convs ending blocks 3-5, batch norm,
  FC 512-512-out). ``width`` scales the conv channels and the FC 512s.
- ``resnetD``, D = 6n+2 (resnet20/32/56/110, any n >= 1): CIFAR ResNet v1, zero-pad (option A)
  shortcuts; widths 16/32/64 times ``width``.
- OpenLTH's networks of Frankle et al. 2021, by OpenLTH's names: ``cifar-resnet-N``,
  ``cifar-vgg-N``, ``mnist-lenet-N1-N2``, and ``tiny-resnet-18`` (``spp.nets.lth_models``).
- ``wrn-D-k``, D = 6n+4 (the paper: wrn-16-k): pre-activation wide ResNet, widths 16k/32k/64k
  times ``width``, 1x1 projection shortcuts where the shape changes.

Conv nets take ``activation`` in ``CONV_ACTIVATIONS`` (default relu). Their first conv has stride
2 on 64x64 inputs (Tiny-ImageNet), as the original. Conv layers have no bias (batch norm follows
each one, so a bias would be redundant; this gives the paper's 269k parameters for ResNet-20);
linear layers have biases (zero-initialised, and pruned with the weights: ``prunable_parameters``).
Batch norm uses TensorFlow's defaults, as the original (``BN_EPS``, ``BN_MOMENTUM``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from numbers import Integral

import torch
from torch import nn

from spp.nets import catalog, lth_models
from spp.nets.catalog import ACTIVATIONS, ARCHITECTURES, arch_family

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "arch_family", "build_model", "prunable_parameters"]

# Activation names. lrelu uses slope 0.2, TensorFlow's tf.nn.leaky_relu default, as the original.
LRELU_SLOPE = 0.2
CONV_ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "lrelu", "selu")
# TensorFlow's batch-norm defaults, which the authors' tf.layers.batch_normalization used:
# epsilon 1e-3 and moving averages kept with decay 0.99 (torch's momentum is 1 - decay).
# The running statistics are what every evaluation (and the test error) uses.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def batch_norm(channels: int, dims: int = 2) -> nn.Module:
    """Batch norm over ``channels`` (dims 2: conv maps, 1: features) with TensorFlow's defaults."""
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


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


class VGG(nn.Module):
    """VGG16 as in the authors' code: VGG-C (13 convs, the last conv of blocks 3-5 is 1x1),
    conv-BN-act everywhere, max-pool after each block, then FC 512-512-out with BN-act after the
    two hidden FC layers. ``stem_stride`` 2 for 64x64 inputs (Tiny-ImageNet), as the original.
    """

    # (out channels, kernel) per conv, None = 2x2 max-pool.
    PLAN = (
        (64, 3), (64, 3), None,
        (128, 3), (128, 3), None,
        (256, 3), (256, 3), (256, 1), None,
        (512, 3), (512, 3), (512, 1), None,
        (512, 3), (512, 3), (512, 1), None,
    )  # fmt: skip

    def __init__(self, shape, num_classes, activation, width, stem_stride):
        super().__init__()
        c, h, w = shape
        self.features = nn.Sequential()
        first = True
        for item in self.PLAN:
            if item is None:
                # ceil_mode: TensorFlow's 'SAME' pooling, so odd sizes (7x7 MNIST maps) still work.
                self.features.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                h, w = -(-h // 2), -(-w // 2)
                continue
            out, k = _scaled(item[0], width), item[1]
            stride = stem_stride if first else 1
            self.features.append(ConvBNAct(c, out, k, stride, activation))
            if first:
                h, w = -(-h // stride), -(-w // stride)
            c, first = out, False
        hidden = _scaled(512, width)
        self.fc1 = nn.Linear(c * h * w, hidden)
        self.bn_fc1 = batch_norm(hidden, 1)
        self.fc2 = nn.Linear(hidden, hidden)
        self.bn_fc2 = batch_norm(hidden, 1)
        self.fc3 = nn.Linear(hidden, num_classes)
        self.act = make_activation(activation)

    def forward(self, x):
        x = self.features(x).flatten(1)
        x = self.act(self.bn_fc1(self.fc1(x)))
        x = self.act(self.bn_fc2(self.fc2(x)))
        return self.fc3(x)


class ConvBNAct(nn.Module):
    """conv (no bias: batch norm follows) -> BN -> activation, 'same' padding."""

    def __init__(self, cin, cout, k, stride, activation):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)
        self.bn = batch_norm(cout)
        self.act = make_activation(activation)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class BasicBlockV1(nn.Module):
    """Post-activation residual block (He et al. 2016a) with the parameter-free option-A shortcut.

    Where the shape changes, the shortcut is a 2x2 average pool of stride 2 (the authors' code;
    He et al. subsample) followed by zero channels appended, so it adds no weights.
    """

    def __init__(self, cin, cout, stride, activation):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn1 = batch_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = batch_norm(cout)
        self.act = make_activation(activation)
        self.stride, self.pad = stride, cout - cin
        if self.pad < 0:
            raise ValueError(f"zero-pad shortcut cannot shrink channels ({cin} -> {cout})")

    def shortcut(self, x):
        if self.stride > 1:
            x = nn.functional.avg_pool2d(x, self.stride, self.stride, ceil_mode=True)
        if self.pad:
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class BasicBlockV2(nn.Module):
    """Pre-activation residual block (He et al. 2016b) as in wide ResNets: BN-act-conv twice, and a
    1x1 projection shortcut from the pre-activated input where the shape changes."""

    def __init__(self, cin, cout, stride, activation):
        super().__init__()
        self.bn1 = batch_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn2 = batch_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.act = make_activation(activation)
        needs_projection = cin != cout or stride != 1
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if needs_projection else None

    def forward(self, x):
        pre = self.act(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        y = self.conv1(pre)
        y = self.conv2(self.act(self.bn2(y)))
        return y + skip


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem conv, three groups of ``blocks`` residual blocks with widths
    ``widths`` (strides 1, 2, 2), global average pooling, one linear classifier.

    ``version`` 1: post-activation, zero-pad shortcuts (resnet20/32/56/110). ``version`` 2:
    pre-activation, projection shortcuts, a final BN-act before pooling (wide ResNets).
    """

    def __init__(self, shape, num_classes, activation, stem, widths, blocks, version, stem_stride):
        super().__init__()
        self.version = version
        self.conv1 = nn.Conv2d(shape[0], stem, 3, stem_stride, padding=1, bias=False)
        if version == 1:
            self.bn1 = batch_norm(stem)
        block = BasicBlockV1 if version == 1 else BasicBlockV2
        cin = stem
        for g, (cout, stride) in enumerate(zip(widths, (1, 2, 2), strict=True)):
            layers = []
            for b in range(blocks):
                layers.append(block(cin, cout, stride if b == 0 else 1, activation))
                cin = cout
            setattr(self, f"layer{g + 1}", nn.Sequential(*layers))
        if version == 2:
            self.bn_final = batch_norm(cin)
        self.act = make_activation(activation)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        if self.version == 1:
            x = self.act(self.bn1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.version == 2:
            x = self.act(self.bn_final(x))
        return self.fc(x.mean(dim=(2, 3)))


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _stem_stride(shape) -> int:
    """Stride 2 in the first conv for 64x64 (Tiny-ImageNet-size) inputs, as the original."""
    return 2 if min(shape[1:]) >= 64 else 1


def _conv_activation(activation: str | None) -> str:
    act = activation or "relu"
    if act not in CONV_ACTIVATIONS:
        raise ValueError(f"unknown conv-net activation {act!r}; valid: {CONV_ACTIVATIONS}")
    return act


def _check_shape(input_shape, num_classes) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(s, Integral) or s <= 0 for s in shape):
        raise ValueError(f"input_shape must be (C, H, W) of positive ints, got {input_shape!r}")
    if not isinstance(num_classes, Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


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
    return MLP(catalog.dense_widths(m.group(0), shape, num_classes, width), act)


def _build_lenet300(m, shape, num_classes, activation, width) -> nn.Module:
    return MLP(catalog.dense_widths("lenet300", shape, num_classes, width), activation or "relu")


def _build_vgg(m, shape, num_classes, activation, width) -> nn.Module:
    act = _conv_activation(activation)
    return VGG(shape, num_classes, act, width, _stem_stride(shape))


def _build_resnet(m, shape, num_classes, activation, width) -> nn.Module:
    depth = int(m.group(1))
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"{m.group(0)!r}: resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...)"
        )
    act = _conv_activation(activation)
    widths = catalog.resnet_widths(width)
    return ResNet(
        shape, num_classes, act, widths[0], widths, (depth - 2) // 6, 1, _stem_stride(shape)
    )


def _build_wrn(m, shape, num_classes, activation, width) -> nn.Module:
    depth, k = int(m.group(1)), int(m.group(2))
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"{m.group(0)!r}: wrn depth must be 6n+4 with n >= 1 (10, 16, 22, ...)")
    if k < 1:
        raise ValueError(f"{m.group(0)!r}: wrn widening factor k must be >= 1")
    act = _conv_activation(activation)
    widths = [_scaled(c * k, width) for c in (16, 32, 64)]
    return ResNet(
        shape,
        num_classes,
        act,
        _scaled(16, width),
        widths,
        (depth - 4) // 6,
        2,
        _stem_stride(shape),
    )


# The builder of each family in spp.nets.catalog (a new network is its entry there and one here).
_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp-K-ACT": _build_mlp,
    "lenet300": _build_lenet300,
    "vgg16": _build_vgg,
    "resnetD": _build_resnet,
    "wrn-16-k": _build_wrn,
    "cifar-resnet-N": lth_models.build_resnet,
    "cifar-vgg-N": lth_models.build_vgg,
    "mnist-lenet-N1-N2": lth_models.build_lenet,
    "tiny-resnet-18": lth_models.build_tiny_resnet18,
}


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
    found = catalog.match(arch)
    if found is None:
        raise ValueError(f"unknown architecture {arch!r}; valid: {catalog.NAMES_HELP}")
    family, m = found
    return _BUILDERS[family.name](m, shape, int(num_classes), activation, float(width))


def prunable_parameters(model: nn.Module, biases: bool = True) -> dict[str, nn.Parameter]:
    """Every ``nn.Linear`` / ``nn.Conv2d`` weight and (``biases``) bias, in model order, keyed as
    in named_parameters(); batch-norm parameters never.

    First, last and shortcut layers included. Biases are in by default because the authors'
    code prunes them (its ``prn_keys`` takes the ``w`` and the ``b`` keys): zero at init, they
    score 0 under connection sensitivity and magnitude, are pruned and stay zero, so the trained
    networks are bias-free and the keep count is over weights and biases together.
    ``biases=False``: the weights alone (OpenLTH, GraSP and SynFlow prune only weights).
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    wanted = {id(m.weight) for m in layers}
    if biases:
        wanted |= {id(m.bias) for m in layers if m.bias is not None}
    return {name: p for name, p in model.named_parameters() if id(p) in wanted}

