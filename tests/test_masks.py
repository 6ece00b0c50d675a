"""Global masks: exact kept counts, deterministic ties, and pruned weights that stay zero."""

from __future__ import annotations

import pytest
import spp
import torch
from spp.nets.models import prunable_parameters
from spp.pruning.masks import HOOKS_ATTR
from torch import nn

SPARSITIES = [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9, 0.95, 0.985, 0.999]
SHAPES = [[(1,)], [(3, 5)], [(7, 3), (2, 2, 3, 3), (10,)], [(100, 784), (100, 100), (10, 100)]]


def _scores(shapes, kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for i, shape in enumerate(shapes):
        if kind == "equal":
            out[f"l{i}.weight"] = torch.ones(shape)
        elif kind == "few-values":  # many ties across and within layers
            out[f"l{i}.weight"] = torch.randint(0, 3, shape, generator=gen).float()
        else:
            out[f"l{i}.weight"] = torch.rand(shape, generator=gen)
    return out


@pytest.mark.parametrize("kind", ["distinct", "equal", "few-values"])
@pytest.mark.parametrize("shapes", SHAPES)
def test_keeps_exactly_round_n_times_density_and_the_top_scores(shapes, kind):
    scores = _scores(shapes, kind)
    n = sum(s.numel() for s in scores.values())
    for sparsity in SPARSITIES:
        mask = spp.global_mask(scores, sparsity)
        assert list(mask) == list(scores)
        assert all(m.dtype == torch.bool and m.shape == scores[k].shape for k, m in mask.items())
        kept = sum(int(m.sum()) for m in mask.values())
        assert kept == round(n * (1 - sparsity)), (n, sparsity)
        flat_s = torch.cat([s.reshape(-1) for s in scores.values()])
        flat_m = torch.cat([m.reshape(-1) for m in mask.values()])
        if 0 < kept < n:
            assert flat_s[flat_m].min() >= flat_s[~flat_m].max()
    assert all(m.all() for m in spp.global_mask(scores, 0.0).values())


def test_ties_are_broken_by_position_deterministically():
    scores = {"a.weight": torch.ones(2, 3), "b.weight": torch.ones(4)}
    mask = spp.global_mask(scores, 0.5)  # keep 5 of 10: the first five in order
    flat = torch.cat([m.reshape(-1) for m in mask.values()])
    assert flat.tolist() == [True] * 5 + [False] * 5
    again = spp.global_mask({k: v.clone() for k, v in scores.items()}, 0.5)
    assert all(torch.equal(mask[k], again[k]) for k in mask)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.5", None, True])
def test_bad_sparsity_is_rejected_by_value(bad):
    with pytest.raises(ValueError, match="sparsity"):
        spp.global_mask({"a.weight": torch.rand(3)}, bad)


def test_nan_scores_and_empty_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        spp.global_mask({"a.weight": torch.tensor([1.0, float("nan")])}, 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        spp.global_mask({}, 0.5)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 4))


def test_pruned_weights_stay_exactly_zero_under_sgd_momentum_weight_decay():
    model = _mlp()
    mask = spp.global_mask(spp.score(model, "random", seed=1), 0.8)
    spp.apply_mask(model, mask)
    spp.apply_mask(model, mask)  # idempotent: one hook per weight, not two
    start = {k: p.detach().clone() for k, p in prunable_parameters(model).items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        x, y = torch.randn(32, 20, generator=gen), torch.randint(0, 4, (32,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for name, p in prunable_parameters(model).items():
        assert (p[~mask[name]] == 0).all(), name
        if mask[name].any():  # kept ones train (a small bias may keep none)
            assert not torch.equal(p[mask[name]], start[name][mask[name]]), name
        assert len(p._backward_hooks) == 1
    assert set(getattr(model, HOOKS_ATTR)) == set(mask)


def test_pruned_weights_stay_zero_under_adam_and_a_replaced_mask_wins():
    model = _mlp()
    first = spp.global_mask(spp.score(model, "random", seed=1), 0.5)
    spp.apply_mask(model, first)
    mask = spp.global_mask(spp.score(model, "random", seed=2), 0.9)
    spp.apply_mask(model, mask)  # replaces the first mask's hooks
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(20):
        opt.zero_grad()
        model(torch.randn(8, 20)).square().sum().backward()
        opt.step()
    revived = 0
    for name, p in prunable_parameters(model).items():
        assert (p[~mask[name]] == 0).all(), name
        revived += int((p[mask[name] & ~first[name]] != 0).sum())
    assert revived > 0  # weights the first mask pruned but the second keeps do train


def test_fully_pruned_layer_runs_and_gives_constant_outputs():
    model = _mlp()
    mask = {k: torch.ones_like(p, dtype=torch.bool) for k, p in prunable_parameters(model).items()}
    mask["3.weight"][:] = False
    spp.apply_mask(model, mask)
    x = torch.randn(10, 20, requires_grad=True)
    out = model(x)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, out[:1].expand_as(out))  # bias path only: input-independent
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(model[3].weight.grad, torch.zeros_like(model[3].weight))
    assert spp.layer_sparsity(mask)["3.weight"] == 1.0


def test_apply_mask_validates_names_and_shapes_before_touching_weights():
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    good = {k: torch.ones_like(p, dtype=torch.bool) for k, p in prunable_parameters(model).items()}
    wrong_name = dict(good)
    wrong_name["9.weight"] = wrong_name.pop("5.weight")
    with pytest.raises(ValueError, match=r"9\.weight.*5\.weight"):
        spp.apply_mask(model, wrong_name)
    wrong_shape = dict(good, **{"3.weight": torch.zeros(4, 16, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"3\.weight.*\(4, 16\).*\(16, 16\)"):
        spp.apply_mask(model, wrong_shape)
    not_binary = dict(good, **{"1.weight": torch.full((16, 20), 0.5)})
    with pytest.raises(ValueError, match="1.weight"):
        spp.apply_mask(model, not_binary)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not hasattr(model, HOOKS_ATTR)


def test_layer_sparsity_is_the_pruned_fraction_of_each_weight_layer_in_order():
    mask = {"a.weight": torch.tensor([[True, False], [False, False]]),
            "a.bias": torch.zeros(2, dtype=torch.bool), "b.weight": torch.ones(2, 2) > 0}
    assert spp.layer_sparsity(mask) == {"a.weight": 0.75, "b.weight": 0.0}  # biases left out


def test_keep_all_is_the_dense_mask_and_changes_no_output():
    """The mask of a table's `dense` row and Figure 2's Dense lines: every prunable parameter
    kept, so applying it leaves the network's function unchanged."""
    from spp.pruning.masks import keep_all

    model = _mlp()
    mask = keep_all(model)
    assert set(mask) == set(prunable_parameters(model))
    assert all(m.dtype == torch.bool and bool(m.all()) for m in mask.values())
    x = torch.randn(5, 20)
    before = model(x)
    spp.apply_mask(model, mask)
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
