"""Initialization schemes against their definitions (Lee et al. 2020, Sec. 4; Xiao et al. 2018)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from spp.nets._conv_orthogonal import conv_orthogonal_kernel
from spp.nets.initializers import INIT_SCHEMES, initialize
from spp.nets.models import build_model, prunable_parameters
from torch import nn


def _circular_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    kh, kw = w.shape[2:]
    x = F.pad(x, (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2), mode="circular")
    return F.conv2d(x, w)


def _operator(w: torch.Tensor, n: int) -> torch.Tensor:
    """The dense matrix of the stride-1 circular convolution with ``w`` on n x n maps."""
    cin = w.shape[1]
    basis = torch.eye(cin * n * n, dtype=w.dtype).reshape(-1, cin, n, n)
    return _circular_conv(basis, w).reshape(cin * n * n, -1).T  # [out*n*n, in*n*n]


def _symbol_is_unitary(w: torch.Tensor, n: int = 8, atol: float = 1e-4) -> bool:
    """Circular conv is orthogonal iff its symbol K(w) is (semi-)unitary at every frequency."""
    sym = torch.fft.fft2(w.double(), s=(n, n)).permute(2, 3, 0, 1)  # [n, n, out, in]
    if w.shape[0] >= w.shape[1]:
        gram = sym.conj().transpose(-1, -2) @ sym
    else:
        gram = sym @ sym.conj().transpose(-1, -2)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    return bool(torch.allclose(gram, eye.expand_as(gram), atol=atol))


# ---------------------------------------------------------------- orthogonal (LDI)


@pytest.mark.parametrize("arch", ["mlp-7-tanh", "mlp-3-linear", "lenet300"])
def test_orthogonal_linear_layers_have_all_singular_values_one(arch):
    model = initialize(build_model(arch, (1, 28, 28), 10), "orthogonal", seed=3)
    for name, w in prunable_parameters(model, biases=False).items():
        s = torch.linalg.svdvals(w.detach().double())
        assert torch.allclose(s, torch.ones_like(s), atol=1e-5), (name, s.min(), s.max())


@pytest.mark.parametrize(
    "cout,cin,kh,kw",
    [(16, 16, 3, 3), (24, 8, 3, 3), (8, 8, 5, 5), (6, 4, 2, 2), (5, 3, 3, 5), (12, 12, 1, 1)],
)
def test_conv_orthogonal_kernel_preserves_norm_under_circular_padding(cout, cin, kh, kw):
    gen = torch.Generator().manual_seed(cout * 100 + cin)
    w = conv_orthogonal_kernel(cout, cin, kh, kw, gen)
    assert w.shape == (cout, cin, kh, kw)
    x = torch.randn(5, cin, 9, 9, dtype=torch.float64, generator=gen)
    y = _circular_conv(x, w)
    assert y.shape == (5, cout, 9, 9)
    torch.testing.assert_close(
        y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-4, atol=0
    )
    a = _operator(w, 6)  # columns orthonormal: A^T A = I
    torch.testing.assert_close(a.T @ a, torch.eye(a.shape[1], dtype=a.dtype), atol=1e-10, rtol=0)


@pytest.mark.parametrize("cout,cin,k", [(4, 6, 3), (8, 32, 3), (3, 5, 1)])
def test_conv_orthogonal_fallback_for_fewer_outputs_has_orthonormal_rows(cout, cin, k):
    gen = torch.Generator().manual_seed(7)
    w = conv_orthogonal_kernel(cout, cin, k, k, gen)
    a = _operator(w, 5)
    torch.testing.assert_close(a @ a.T, torch.eye(a.shape[0], dtype=a.dtype), atol=1e-10, rtol=0)
    # the adjoint (transposed convolution) preserves the norm of every output-space vector
    y = torch.randn(a.shape[0], 4, dtype=torch.float64, generator=gen)
    torch.testing.assert_close((a.T @ y).norm(dim=0), y.norm(dim=0), rtol=1e-6, atol=0)


def test_conv_orthogonal_is_not_a_delta_kernel():
    # Xiao et al.'s generated kernels spread over all taps; delta-orthogonal puts all the energy
    # in the centre. The authors' code uses the former.
    w = conv_orthogonal_kernel(32, 32, 3, 3, torch.Generator().manual_seed(0))
    energy = (w**2).sum(dim=(0, 1))
    assert energy[1, 1] / energy.sum() < 0.6
    assert (energy > 0.01 * energy.sum()).all()


def test_flattened_orthogonal_kernel_is_not_conv_orthogonal():
    # Why the construction matters: torch's orthogonal_ on the flattened kernel fails the check.
    w = torch.empty(16, 16, 3, 3, dtype=torch.float64)
    nn.init.orthogonal_(w, generator=torch.Generator().manual_seed(0))
    assert not _symbol_is_unitary(w)


@pytest.mark.parametrize(
    "arch,shape",
    [("resnet20", (3, 32, 32)), ("wrn-10-2", (3, 16, 16)), ("vgg16", (3, 32, 32))],
)
def test_orthogonal_init_makes_every_layer_of_a_conv_net_orthogonal(arch, shape):
    width = 0.25 if arch == "vgg16" else 1.0
    model = initialize(build_model(arch, shape, 10, width=width), "orthogonal", seed=1)
    for name, w in prunable_parameters(model, biases=False).items():
        w = w.detach()
        if w.dim() == 4:
            assert _symbol_is_unitary(w), name
        else:
            s = torch.linalg.svdvals(w.double())
            assert torch.allclose(s, torch.ones_like(s), atol=1e-5), name


# ---------------------------------------------------------------- Gaussian schemes


@pytest.mark.parametrize("layer", [nn.Linear(1000, 400), nn.Conv2d(48, 96, 3)])
@pytest.mark.parametrize("scheme", ["vs-lecun", "vs-glorot", "vs-he"])
def test_variance_scaling_matches_formula(layer, scheme):
    if isinstance(layer, nn.Linear):
        fan_in, fan_out = 1000, 400
    else:
        fan_in, fan_out = 48 * 9, 96 * 9
    expected = {
        "vs-lecun": 1 / fan_in,
        "vs-glorot": 2 / (fan_in + fan_out),
        "vs-he": 2 / fan_in,
    }[scheme]
    initialize(layer, scheme, seed=0)
    w = layer.weight.detach().double().flatten()
    # sample variance has relative std sqrt(2/n) < 0.6% here; 3% tolerates > 5 sigma
    assert abs(w.var().item() / expected - 1) < 0.03
    assert abs(w.mean().item()) < 5 * (expected / w.numel()) ** 0.5
    # untruncated: a normal sample of this size reaches beyond 2 std (truncation cuts there)
    assert (w.abs() > 2.5 * expected**0.5).any()
    assert (layer.bias == 0).all()


@pytest.mark.parametrize("gamma", [1e-4, 1e-2, 1.0, 10.0])
def test_scaled_gaussian_variance_is_gamma(gamma):
    layer = nn.Linear(800, 500)
    initialize(layer, "sg", seed=2, gamma=gamma)
    w = layer.weight.detach().double()
    assert abs(w.var().item() / gamma - 1) < 0.03


def test_biases_zero_and_batch_norm_reset():
    model = build_model("resnet20", (3, 32, 32), 10)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.3)
    model.train()
    model(torch.randn(4, 3, 32, 32))  # moves running statistics
    initialize(model, "vs-he", seed=0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert (module.weight == 1).all() and (module.bias == 0).all()
            assert (module.running_mean == 0).all() and (module.running_var == 1).all()
        if isinstance(module, (nn.Linear, nn.Conv2d)) and module.bias is not None:
            assert (module.bias == 0).all()


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_same_seed_same_weights_different_seed_different(scheme):
    gamma = 1e-2 if scheme == "sg" else None

    def weights(seed):
        torch.manual_seed(1000 + seed)  # the global RNG must not matter
        model = build_model("resnet8", (3, 16, 16), 10)
        initialize(model, scheme, seed=seed, gamma=gamma)
        return {k: v.clone() for k, v in model.state_dict().items()}

    a, b, c = weights(5), weights(5), weights(6)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(
        not torch.equal(a[k], c[k])
        for k in prunable_parameters(build_model("resnet8", (3, 16, 16), 10))
    )


def test_initialize_leaves_global_rng_alone():
    model = build_model("mlp-3-tanh", (1, 28, 28), 10)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    initialize(model, "orthogonal", seed=9)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- bad input


def test_unknown_scheme_lists_valid_names():
    model = build_model("mlp-3-tanh", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="vs-lecun.*orthogonal"):
        initialize(model, "xavier", seed=0)


@pytest.mark.parametrize("gamma", [None, 0.0, -1.0, float("nan"), float("inf")])
def test_sg_needs_positive_gamma(gamma):
    model = build_model("mlp-3-tanh", (1, 28, 28), 10)
    before = model.layers[0].weight.detach().clone()
    with pytest.raises(ValueError, match="gamma"):
        initialize(model, "sg", seed=0, gamma=gamma)
    assert torch.equal(model.layers[0].weight, before)  # refused before any work


def test_gamma_for_other_scheme_is_an_error():
    model = build_model("mlp-3-tanh", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="gamma"):
        initialize(model, "vs-he", seed=0, gamma=1e-2)
