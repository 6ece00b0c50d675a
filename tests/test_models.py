"""Architectures: shapes, parameter counts against the papers, and the structure of the original."""

from __future__ import annotations

import pytest
import torch
from spp.nets.models import (
    ACTIVATIONS,
    ARCHITECTURES,
    CONV_ACTIVATIONS,
    BasicBlockV1,
    build_model,
    prunable_parameters,
)
from torch import nn

MNIST, CIFAR, TINY = (1, 28, 28), (3, 32, 32), (3, 64, 64)



def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- forward / backward


@pytest.mark.parametrize(
    "arch,shape,classes,kwargs",
    [
        ("mlp-7-tanh", MNIST, 10, {}),
        ("mlp-3-linear", MNIST, 10, {}),
        ("mlp-5-selu", CIFAR, 10, {}),
        ("lenet300", MNIST, 10, {}),
        ("vgg16", CIFAR, 10, {"width": 0.125}),
        ("vgg16", MNIST, 10, {"width": 0.125, "activation": "tanh"}),
        ("vgg16", TINY, 200, {"width": 0.125}),
        ("resnet20", CIFAR, 10, {}),
        ("resnet14", CIFAR, 10, {"width": 2.0, "activation": "lrelu"}),
        ("resnet8", MNIST, 10, {"activation": "selu"}),
        ("wrn-16-2", TINY, 200, {}),
        ("wrn-10-1", CIFAR, 10, {"activation": "tanh"}),
    ],
)
def test_every_arch_forwards_and_backwards(arch, shape, classes, kwargs):
    model = build_model(arch, shape, classes, **kwargs)
    x = torch.randn(3, *shape)
    y = model(x)
    assert y.shape == (3, classes)
    y.square().sum().backward()
    for name, w in prunable_parameters(model, biases=False).items():
        assert w.grad is not None and torch.isfinite(w.grad).all(), name
    model.eval()
    assert model(x[:1]).shape == (1, classes)


def test_wrn_first_conv_has_stride_two_on_64x64_inputs():
    # Tiny-ImageNet: the original strides the first conv so the last group runs at 8x8.
    seen = {}
    for shape in (TINY, CIFAR):
        model = build_model("wrn-16-4", shape, 10)
        model.layer3.register_forward_hook(lambda m, i, o, s=shape: seen.__setitem__(s, o.shape))
        model(torch.randn(1, *shape))
        assert model.conv1.stride == ((2, 2) if shape == TINY else (1, 1))
    assert seen[TINY][1:] == (256, 8, 8)
    assert seen[CIFAR][1:] == (256, 8, 8)


# ---------------------------------------------------------------- parameter counts


def test_lenet300_parameter_count():
    # 784*300+300 + 300*100+100 + 100*10+10
    assert _count(build_model("lenet300", MNIST, 10)) == 266_610


def test_mlp_structure():
    model = build_model("mlp-7-tanh", MNIST, 10)
    shapes = [tuple(w.shape) for w in prunable_parameters(model, biases=False).values()]
    assert shapes == [(100, 784)] + [(100, 100)] * 5 + [(10, 100)]
    assert isinstance(model.act, nn.Tanh)
    linear = build_model("mlp-3-linear", MNIST, 10)
    x = torch.randn(4, *MNIST)
    # a linear MLP is affine: f(a + b) - f(0) == f(a) - f(0) + f(b) - f(0)
    zero = torch.zeros_like(x[:1])
    lhs = linear(x[:2] + x[2:]) - linear(zero)
    rhs = linear(x[:2]) + linear(x[2:]) - 2 * linear(zero)
    torch.testing.assert_close(lhs, rhs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "depth,expected",
    # He et al. 2016: 0.27M, 0.46M, 0.85M, 1.7M; Lee et al. Fig. 3: ResNet20 has 269k.
    [(20, 269_722), (32, 464_154), (56, 853_018), (110, 1_727_962)],
)
def test_cifar_resnet_parameter_counts(depth, expected):
    model = build_model(f"resnet{depth}", CIFAR, 10)
    assert _count(model) == expected
    # depth counts the weight layers: 6n+1 convs + 1 linear, no shortcut weights (option A)
    assert len(prunable_parameters(model, biases=False)) == depth


def test_resnet20_matches_the_papers_269k():
    assert round(_count(build_model("resnet20", CIFAR, 10)) / 1000) in (269, 270)


def test_resnet_width_multiplier_scales_channels():
    model = build_model("resnet20", CIFAR, 10, width=2.0)
    convs = [w for w in prunable_parameters(model, biases=False).values() if w.dim() == 4]
    assert {w.shape[0] for w in convs} == {32, 64, 128}
    assert model.fc.in_features == 128
    # convs scale ~ width^2: 4x parameters, up to the stem and classifier
    ratio = _count(model) / _count(build_model("resnet20", CIFAR, 10))
    assert 3.8 < ratio < 4.0


def test_wrn_16_structure():
    model = build_model("wrn-16-6", TINY, 200)
    weights = prunable_parameters(model, biases=False)
    convs = {n: w for n, w in weights.items() if w.dim() == 4}
    shortcuts = [n for n in convs if "shortcut" in n]
    # the original counts 16 conv layers: stem + 12 block convs + 3 projection shortcuts
    assert len(convs) == 16 and len(shortcuts) == 3
    assert all(convs[n].shape[2:] == (1, 1) for n in shortcuts)
    assert {w.shape[0] for w in convs.values()} == {16, 96, 192, 384}
    assert weights["fc.weight"].shape == (200, 384)


def test_vgg16_is_the_vgg_c_variant():
    model = build_model("vgg16", CIFAR, 10)
    weights = list(prunable_parameters(model, biases=False).values())
    convs = [w for w in weights if w.dim() == 4]
    fcs = [w for w in weights if w.dim() == 2]
    assert len(convs) == 13 and len(fcs) == 3
    kernels = [w.shape[2] for w in convs]
    # 1x1 convs end blocks 3, 4 and 5 (VGG-C); everything else 3x3
    assert kernels == [3, 3, 3, 3, 3, 3, 1, 3, 3, 1, 3, 3, 1]
    assert [w.shape[0] for w in convs] == [64, 64, 128, 128] + [256] * 3 + [512] * 6
    assert [tuple(w.shape) for w in fcs] == [(512, 512), (512, 512), (10, 512)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13


def test_vgg16_width_scales_convs_and_fc():
    model = build_model("vgg16", CIFAR, 10, width=0.25)
    weights = list(prunable_parameters(model, biases=False).values())
    assert max(w.shape[0] for w in weights if w.dim() == 4) == 128
    assert weights[-3].shape == (128, 128) and weights[-1].shape == (10, 128)


# ---------------------------------------------------------------- structure details


def test_option_a_shortcut_is_pooled_input_with_zero_channels():
    block = BasicBlockV1(4, 8, stride=2, activation="relu").eval()
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv2.weight.zero_()
    x = torch.randn(2, 4, 6, 6)
    y = block(x)  # residual branch is exactly zero: only the shortcut remains
    pooled = torch.nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(y[:, :4], torch.relu(pooled))
    assert (y[:, 4:] == 0).all()
    assert len(prunable_parameters(block)) == 2  # no shortcut weights


def test_prunable_parameters_are_all_linear_and_conv_weights_and_biases_in_order():
    """The original's prn_keys: every w and b of the conv and linear layers; never batch norm."""
    model = build_model("wrn-10-2", CIFAR, 10)
    order = [n for n, _ in model.named_parameters()]
    layers = [(m, mod) for m, mod in model.named_modules()
              if isinstance(mod, (nn.Linear, nn.Conv2d))]
    weights = list(prunable_parameters(model, biases=False))
    assert weights == [n for n in order if n in {f"{m}.weight" for m, _ in layers}]
    assert weights[0] == "conv1.weight" and weights[-1] == "fc.weight"
    names = list(prunable_parameters(model))
    biases = {f"{m}.bias" for m, mod in layers if mod.bias is not None}
    assert biases == {"fc.bias"}  # conv layers have none (batch norm follows)
    assert names == [n for n in order if n in set(weights) | biases]  # model order
    assert not any("bn" in n for n in names)
    params = dict(model.named_parameters())
    assert all(prunable_parameters(model)[n] is params[n] for n in names)


@pytest.mark.parametrize(
    "activation,cls",
    [("relu", nn.ReLU), ("tanh", nn.Tanh), ("lrelu", nn.LeakyReLU), ("selu", nn.SELU)],
)
def test_conv_nets_use_the_requested_activation(activation, cls):
    for arch in ("resnet8", "vgg16", "wrn-10-1"):
        model = build_model(arch, CIFAR, 10, activation=activation, width=0.125)
        structural = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d)
        leaves = [m for m in model.modules() if not list(m.children())]
        kinds = {type(m) for m in leaves if not isinstance(m, structural)}
        assert kinds == {cls}, (arch, kinds)
    lrelu = build_model("resnet8", CIFAR, 10, activation="lrelu").act
    assert lrelu.negative_slope == 0.2  # TensorFlow's default, as the original


def test_lenet300_default_relu():
    assert isinstance(build_model("lenet300", MNIST, 10).act, nn.ReLU)
    assert isinstance(build_model("lenet300", MNIST, 10, activation="tanh").act, nn.Tanh)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("arch", ["resnet", "resnet21", "mlp-7", "vgg19", "wrn-15-2", "", "LeNet"])
def test_bad_arch_lists_valid_names(arch):
    with pytest.raises(ValueError) as err:
        build_model(arch, CIFAR, 10)
    msg = str(err.value)
    assert repr(arch) in msg or arch in msg


def test_unknown_arch_message_lists_every_base_name():
    with pytest.raises(ValueError) as err:
        build_model("alexnet", CIFAR, 10)
    assert all(name in str(err.value) for name in ARCHITECTURES)


@pytest.mark.parametrize(
    "arch,activation", [("mlp-7-swish", None), ("resnet20", "gelu"), ("resnet20", "linear")]
)
def test_bad_activation_lists_valid_names(arch, activation):
    with pytest.raises(ValueError, match="relu"):
        build_model(arch, CIFAR, 10, activation=activation)


def test_mlp_activation_argument_must_agree_with_name():
    with pytest.raises(ValueError, match="tanh"):
        build_model("mlp-7-tanh", MNIST, 10, activation="relu")
    assert isinstance(build_model("mlp-7-tanh", MNIST, 10, activation="tanh").act, nn.Tanh)


@pytest.mark.parametrize(
    "shape,classes,width",
    [((28, 28), 10, 1.0), ((1, 28, 28), 1, 1.0), ((1, 28, 28), 10, 0.0), ((1, 28, 28), 10, -2)],
)
def test_bad_shape_classes_width(shape, classes, width):
    with pytest.raises(ValueError):
        build_model("resnet20", shape, classes, width=width)


def test_activation_name_tuples():
    assert set(CONV_ACTIVATIONS) < set(ACTIVATIONS)
    assert "linear" in ACTIVATIONS and "linear" not in CONV_ACTIVATIONS
