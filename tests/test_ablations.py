"""Frankle et al.'s ablations against their definitions (reference code gets two wrong)."""

from __future__ import annotations

import pytest
import spp
import torch
from spp.nets.models import build_model, prunable_parameters
from spp.pruning.ablations import ABLATIONS, ablate, collapsed_layers
from spp.pruning.masks import global_mask


def _scores(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.randn(6, 5, generator=gen),
        "b.weight": torch.randn(4, 6, generator=gen),
        "c.weight": torch.randn(3, 4, generator=gen),
    }


def test_shuffle_keeps_layer_counts_moves_positions_and_is_seeded():
    mask = global_mask(_scores(), 0.6)
    a = ablate(mask, "shuffle", seed=1)
    b = ablate(mask, "shuffle", seed=1)
    c = ablate(mask, "shuffle", seed=2)
    for name, m in mask.items():
        assert a[name].dtype == torch.bool and a[name].shape == m.shape
        assert int(a[name].sum()) == int(m.sum())
        assert torch.equal(a[name], b[name])
    assert any(not torch.equal(a[n], mask[n]) for n in mask)
    assert any(not torch.equal(a[n], c[n]) for n in mask)


def test_shuffle_draws_kept_positions_uniformly_within_the_layer():
    # 5 of 20 kept, all at the front: after shuffling each position is kept w.p. 1/4.
    mask = {"w": torch.arange(20).reshape(4, 5) < 5}
    freq = torch.stack([ablate(mask, "shuffle", seed=s)["w"].float() for s in range(2000)]).mean(0)
    assert (freq - 0.25).abs().max() < 0.05


def test_invert_keeps_exactly_the_lowest_scores_with_the_same_count():
    scores = _scores(3)
    scores["a.weight"][0, :3] = 0.0  # zeros must not break inversion (no 1/score)
    for sparsity in (0.5, 0.8, 0.9):
        mask = global_mask(scores, sparsity)
        inv = ablate(mask, "invert", scores=scores, seed=0)
        kept = sum(int(m.sum()) for m in mask.values())
        assert sum(int(m.sum()) for m in inv.values()) == kept
        flat = torch.cat([s.flatten() for s in scores.values()])
        flat_inv = torch.cat([inv[n].flatten() for n in scores])
        lowest = torch.argsort(flat)[:kept]
        expected = torch.zeros_like(flat_inv)
        expected[lowest] = True
        assert torch.equal(flat_inv, expected)
        # k <= n/2: the inverted mask and the normal one are disjoint.
        assert not any((inv[n] & mask[n]).any() for n in mask)


def test_invert_rejects_non_finite_scores_and_needs_scores():
    scores = _scores()
    mask = global_mask(scores, 0.5)
    with pytest.raises(ValueError, match="scores="):
        ablate(mask, "invert", seed=0)
    scores["b.weight"][0, 0] = float("-inf")
    with pytest.raises(ValueError, match="invert=True"):
        ablate(mask, "invert", scores=scores, seed=0)


def test_reinit_keeps_the_mask_and_draws_fresh_weights_from_the_same_init():
    model = build_model("lenet300", (1, 28, 28), 10)
    spp.initialize(model, "vs-lecun", seed=0)
    old = {n: p.detach().clone() for n, p in prunable_parameters(model, biases=False).items()}
    mask = global_mask({n: w.abs() for n, w in old.items()}, 0.9)
    new_mask = ablate(mask, "reinit", model=model, init="vs-lecun", seed=1)
    for name, w in prunable_parameters(model, biases=False).items():
        assert torch.equal(new_mask[name], mask[name])
        w = w.detach()
        assert not torch.equal(w, old[name])
        fan_in = w.shape[1]
        if w.numel() >= 10_000:  # enough samples to check the variance 1/fan_in to ~3%
            assert float(w.var()) * fan_in == pytest.approx(1.0, rel=0.05)
            corr = torch.corrcoef(torch.stack([w.flatten(), old[name].flatten()]))[0, 1]
            assert abs(float(corr)) < 0.02


def test_none_is_a_copy_and_unknown_names_are_listed():
    mask = global_mask(_scores(), 0.5)
    same = ablate(mask, "none", seed=0)
    assert all(torch.equal(same[n], mask[n]) and same[n] is not mask[n] for n in mask)
    with pytest.raises(ValueError, match="valid: none, shuffle, reinit, invert"):
        ablate(mask, "reverse", seed=0)
    with pytest.raises(ValueError, match="model= and init="):
        ablate(mask, "reinit", seed=0)
    assert set(ABLATIONS) == {"none", "shuffle", "reinit", "invert"}


def test_collapsed_layers_names_fully_pruned_layers_in_order():
    mask = {"a": torch.ones(2, 2, dtype=torch.bool), "b": torch.zeros(3, dtype=torch.bool),
            "c": torch.zeros(1, 2, dtype=torch.bool)}
    assert collapsed_layers(mask) == ["b", "c"]
    mask["c"][0, 1] = True
    assert collapsed_layers(mask) == ["b"]
