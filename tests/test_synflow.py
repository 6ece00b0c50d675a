"""SynFlow against its definition: conservation of synaptic flow, closed form, iterative mask."""

from __future__ import annotations

import pytest
import spp
import torch
from spp.nets.models import build_model, prunable_parameters
from spp.pruning.ablations import collapsed_layers
from spp.pruning.masks import global_mask
from spp.pruning.synflow import linearized_copy, synaptic_saliency, synflow_rounds, synflow_scores
from torch import nn


def _chain(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 6, bias=False), nn.ReLU(),
        nn.Linear(6, 5, bias=False), nn.ReLU(),
        nn.Linear(5, 3, bias=False),
    )


def _conv_chain(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, bias=False), nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 3, bias=False),
    )


@pytest.mark.parametrize("make,shape", [(_chain, (8,)), (_conv_chain, (2, 6, 6))])
def test_every_layer_carries_the_whole_synaptic_flow(make, shape):
    """Tanaka et al.: in a bias-free ReLU chain each layer's saliencies sum to R."""
    work = linearized_copy(make())
    saliency, r = synaptic_saliency(work, shape)
    assert r > 0
    for name, s in saliency.items():
        assert float(s.sum()) == pytest.approx(r, rel=1e-10), name


def test_flow_into_each_hidden_neuron_equals_flow_out_of_it():
    work = linearized_copy(_chain(1))
    saliency, _ = synaptic_saliency(work, (8,))
    names = list(saliency)  # weights are [out, in]
    for into, out_of in zip(names[:-1], names[1:], strict=True):
        torch.testing.assert_close(saliency[into].sum(1), saliency[out_of].sum(0))


def test_one_round_matches_the_closed_form_of_a_two_layer_linear_net():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    w1, w2 = (p.detach().double().abs() for p in prunable_parameters(model).values())
    # R = 1^T |W2| |W1| 1 ; dR/dW1[i,j] = sum_k |W2|[k,i] ; dR/dW2[k,i] = sum_j |W1|[i,j]
    expected = [w1 * w2.sum(0)[:, None], w2 * w1.sum(1)[None, :]]
    scores = synflow_scores(model, sparsity=0.5, iterations=1, input_shape=(4,))
    for got, want in zip(scores.values(), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_global_mask_of_scores_reproduces_the_iterative_mask_and_signs_are_kept():
    model = build_model("lenet300", (1, 8, 8), 10)
    spp.initialize(model, "vs-lecun", seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sparsity = 0.98
    scores, mask, flows = synflow_rounds(model, sparsity, (1, 8, 8), iterations=100)
    via_registry = spp.score(model, "synflow", sparsity=sparsity, input_shape=(1, 8, 8))
    again = global_mask(via_registry, sparsity)
    n = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == round(n * (1 - sparsity))
    for name in mask:
        assert torch.equal(again[name], mask[name])
        # Weights pruned before the last round are -inf, all others finite and >= 0.
        finite = torch.isfinite(via_registry[name])
        assert (via_registry[name][finite] >= 0).all()
    pruned_before_last = sum(int((~torch.isfinite(s)).sum()) for s in via_registry.values())
    assert pruned_before_last == n - round(n * (1 - sparsity) ** 0.99)
    assert len(flows) == 100
    # Tanaka et al.: iterative SynFlow avoids layer collapse even at 98% sparsity.
    assert collapsed_layers(mask) == []
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), f"{name} changed by scoring"


def test_iterative_masks_shrink_monotonically():
    """Weights pruned in a round stay pruned: the final mask is inside every earlier one."""
    model = _conv_chain(3)
    _, m_half, _ = synflow_rounds(model, 1 - 0.5**0.5, (2, 6, 6), iterations=5)
    scores, m_full, _ = synflow_rounds(model, 0.5, (2, 6, 6), iterations=10)
    # Round 5 of 10 toward 50% equals round 5 of 5 toward 1-sqrt(0.5): same schedule prefix.
    for name in m_full:
        assert not (m_full[name] & ~m_half[name]).any()


def test_inverted_synflow_keeps_the_lowest_saliencies():
    model = _chain(4)
    normal = synflow_scores(model, sparsity=0.5, iterations=1, input_shape=(8,))
    inverted = synflow_scores(model, sparsity=0.5, iterations=1, input_shape=(8,), invert=True)
    for name in normal:
        torch.testing.assert_close(inverted[name], -normal[name])
    _, mask, _ = synflow_rounds(model, 0.7, (8,), iterations=20, invert=True)
    n = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == round(n * 0.3)


def test_input_shape_from_batches_and_bad_input():
    model = _chain()
    x = torch.randn(5, 8)
    a = synflow_scores(model, iter([(x, torch.zeros(5, dtype=torch.long))]), sparsity=0.3,
                       iterations=3)
    b = synflow_scores(model, sparsity=0.3, iterations=3, input_shape=(8,))
    for name in a:
        assert torch.equal(a[name], b[name])
    with pytest.raises(ValueError, match="sparsity"):
        synflow_scores(model, input_shape=(8,))
    with pytest.raises(ValueError, match="sparsity"):
        synflow_scores(model, sparsity=1.0, input_shape=(8,))
    with pytest.raises(ValueError, match="iterations"):
        synflow_scores(model, sparsity=0.5, iterations=0, input_shape=(8,))
    with pytest.raises(ValueError, match="input shape"):
        synflow_scores(model, sparsity=0.5)
