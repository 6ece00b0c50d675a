"""The networks of Frankle et al. (2021), as OpenLTH (facebookresearch/open_lth) defines them.

They sit beside Lee et al.'s networks (``spp.nets.models``) under OpenLTH's model names with hyphens
for underscores (``cifar_resnet_20`` is ``cifar-resnet-20``: the workflow's path tokens use ``_``
as a separator), so a config says which code a network follows:

- ``cifar-resnet-N`` (N = 6D+2; ``cifar-resnet-20`` is the paper's ResNet-20): 3x3 stem conv, three
  segments of D post-activation blocks with 16/32/64 filters, and, unlike Lee et al.'s option-A
  zero-pad shortcuts, a 1x1 conv (stride 2) + batch norm projection wherever the shape changes.
  Global average pool, one linear layer. Convs have no bias.
- ``cifar-vgg-N`` (N in 11, 13, 16, 19; ``cifar-vgg-16`` is the paper's VGG-16): 3x3 conv (with
  bias) + BN + ReLU modules and 2x2 max pools in VGG's plan, a final 2x2 average pool and one
  linear layer 512 -> classes.
- ``mnist-lenet-N1-N2...`` (``mnist-lenet-300-100``): fully connected ReLU layers with biases.
  Not one of the paper's networks: it is OpenLTH's MNIST network, used here for the CPU-scale
  check of the paper's claims.
- ``tiny-resnet-18``: ResNet-18 on 64x64 Tiny-ImageNet. Upstream OpenLTH has none; the paper's
  code (a fork of OpenLTH) uses torchvision's ImageNet ResNet-18 unchanged: a 7x7 stride-2 stem
  conv + BN + ReLU + 3x3 stride-2 max pool, four stages of two basic blocks (64/128/256/512
  filters, 1x1 + BN projection shortcuts), global average pool, linear. That fork gives it a
  1000-way output even on Tiny-ImageNet; here it has the dataset's 200 classes.

Batch norm keeps PyTorch's defaults (OpenLTH's), not the TensorFlow ones Lee et al.'s networks
use. Initialise them with scheme ``kaiming-normal`` (``spp.nets.initializers``), OpenLTH's default.
"""

from __future__ import annotations

import math
import re

from torch import nn
from torch.nn import functional as F

VGG_PLANS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512],
}


class Block(nn.Module):
    """Post-activation basic block; 1x1 conv + BN projection shortcut where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv + BN + ReLU (``imagenet_stem``: 7x7 stride 2 and a max pool; else 3x3 stride 1),
    segments of ``Block`` (the first block of every segment but the first downsamples), global
    average pool, linear."""

    def __init__(self, in_channels: int, num_classes: int, plan: list[tuple[int, int]],
                 imagenet_stem: bool = False):
        super().__init__()
        width = plan[0][0]
        k, stride = (7, 2) if imagenet_stem else (3, 1)
        self.conv = nn.Conv2d(in_channels, width, k, stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.pool = nn.MaxPool2d(3, 2, padding=1) if imagenet_stem else nn.Identity()
        blocks, cin = [], width
        for segment, (filters, count) in enumerate(plan):
            for b in range(count):
                blocks.append(Block(cin, filters, 2 if segment > 0 and b == 0 else 1))
                cin = filters
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.blocks(self.pool(F.relu(self.bn(self.conv(x)))))
        return self.fc(x.mean(dim=(2, 3)))


class VGG(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, plan: list):
        super().__init__()
        layers, cin = [], in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, spec, 3, padding=1), nn.BatchNorm2d(spec), nn.ReLU()]
                cin = spec
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.avg_pool2d(self.layers(x), 2)
        return self.fc(x.flatten(1))


class LeNet(nn.Module):
    def __init__(self, in_features: int, num_classes: int, plan: list[int]):
        super().__init__()
        sizes = [in_features, *plan]
        self.fc_layers = nn.ModuleList(nn.Linear(a, b)
                                       for a, b in zip(sizes, sizes[1:], strict=False))
        self.fc = nn.Linear(sizes[-1], num_classes)

    def forward(self, x):
        x = x.flatten(1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
        return self.fc(x)


def _no_options(name: str, activation, width) -> None:
    if activation not in (None, "relu") or width != 1.0:
        raise ValueError(f"{name!r} is OpenLTH's network as defined there: ReLU and width 1 only "
                         f"(got activation={activation!r}, width={width!r})")


def build_resnet(m: re.Match, shape, num_classes, activation, width) -> nn.Module:
    _no_options(m.group(0), activation, width)
    depth = int(m.group(1))
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"{m.group(0)!r}: depth must be 6D+2 with D >= 1 (8, 14, 20, 32, ...)")
    d = (depth - 2) // 6
    return ResNet(shape[0], num_classes, [(16, d), (32, d), (64, d)])


def build_vgg(m: re.Match, shape, num_classes, activation, width) -> nn.Module:
    _no_options(m.group(0), activation, width)
    n = int(m.group(1))
    if n not in VGG_PLANS:
        raise ValueError(f"{m.group(0)!r}: VGG depth must be one of {sorted(VGG_PLANS)}")
    if shape[1:] != (32, 32):
        raise ValueError(f"{m.group(0)!r} is defined for 32x32 inputs, got {shape}")
    return VGG(shape[0], num_classes, VGG_PLANS[n])


def build_lenet(m: re.Match, shape, num_classes, activation, width) -> nn.Module:
    _no_options(m.group(0), activation, width)
    plan = [int(v) for v in m.group(1).split("-")]
    if any(v < 1 for v in plan):
        raise ValueError(f"{m.group(0)!r}: every layer needs >= 1 unit")
    return LeNet(math.prod(shape), num_classes, plan)


def build_tiny_resnet18(m: re.Match, shape, num_classes, activation, width) -> nn.Module:
    _no_options(m.group(0), activation, width)
    return ResNet(shape[0], num_classes, [(64, 2), (128, 2), (256, 2), (512, 2)],
                  imagenet_stem=True)
