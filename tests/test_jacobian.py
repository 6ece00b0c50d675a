"""Jacobian singular values against per-example autograd and closed forms."""

from __future__ import annotations

import math

import pytest
import spp
import torch
from spp.nets.models import prunable_parameters
from spp.signal.jacobian import batch_jacobian
from torch import nn


def _tanh_mlp():
    model = spp.build_model("mlp-4-tanh", (1, 6, 5), 3)
    return spp.initialize(model, "sg", seed=0, gamma=0.1)


def _batches(n: int, bs: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 5, generator=gen)
    return [(xb, torch.zeros(len(xb), dtype=torch.long)) for xb in x.split(bs)]


def test_batch_jacobian_equals_per_example_autograd():
    model = _tanh_mlp()
    x = _batches(9, 9)[0][0]
    jac = batch_jacobian(model.eval(), x)
    for b in range(len(x)):
        ref = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], x[b])
        torch.testing.assert_close(jac[b], ref.reshape(3, 30))


def test_statistics_over_all_singular_values_of_all_examples():
    model = _tanh_mlp()
    data = _batches(23, 5)
    stats = spp.jacobian_singular_values(model, iter(data))
    s = []
    for x, _ in data:
        for b in range(len(x)):
            ref = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], x[b])
            s.append(torch.linalg.svdvals(ref.reshape(3, 30).double()))
    s = torch.cat(s)
    assert stats["mean"] == pytest.approx(s.mean().item(), rel=1e-5)
    assert stats["std"] == pytest.approx(s.std(correction=0).item(), rel=1e-4)
    assert stats["max"] == pytest.approx(s.max().item(), rel=1e-5)
    assert stats["min"] == pytest.approx(s.min().item(), rel=1e-4)
    assert stats["condition_number"] == pytest.approx((s.max() / s.min()).item(), rel=1e-4)
    # Regrouping the same examples into other batches changes nothing.
    again = spp.jacobian_singular_values(model, iter(_batches(23, 23)))
    for key in stats:
        assert again[key] == pytest.approx(stats[key], rel=1e-5)


def test_linear_network_has_the_singular_values_of_the_weight_product():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(30, 8), nn.Linear(8, 4))
    model.train()
    expected = torch.linalg.svdvals((model[2].weight @ model[1].weight).double())
    stats = spp.jacobian_singular_values(model, iter(_batches(7, 3)))
    assert stats["mean"] == pytest.approx(expected.mean().item(), rel=1e-5)
    assert stats["condition_number"] == pytest.approx((expected[0] / expected[-1]).item(), rel=1e-4)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_disconnected_network_has_zero_singular_values_and_infinite_condition_number():
    model = _tanh_mlp()
    mask = {k: torch.ones_like(p, dtype=torch.bool) for k, p in prunable_parameters(model).items()}
    mask["layers.2.weight"][:] = False
    spp.apply_mask(model, mask)
    stats = spp.jacobian_singular_values(model, iter(_batches(4, 2)))
    assert stats["mean"] == stats["max"] == stats["min"] == 0.0
    assert math.isinf(stats["condition_number"])


def test_empty_data_raises():
    with pytest.raises(ValueError, match="no batches"):
        spp.jacobian_singular_values(_tanh_mlp(), iter([]))
