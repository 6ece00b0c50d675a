"""GraSP against its definition: keep-score theta * (H g), H g checked by finite differences."""

from __future__ import annotations

import pytest
import spp
import torch
import torch.nn.functional as F
from spp.nets.models import prunable_parameters
from spp.pruning.grasp import grasp_scores
from torch import nn
from torch.func import functional_call


def _tanh_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)
    ).double()


def _batches(seed: int = 1, n: int = 2, size: int = 7):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 6, generator=gen, dtype=torch.float64),
         torch.randint(0, 3, (size,), generator=gen))
        for _ in range(n)
    ]


def _loss_grad(model, batches, weights: dict[str, torch.Tensor], temperature: float):
    """First-order gradient of sum_b CE(f(x_b)/T, y_b) w.r.t. the given weights (no double grad)."""
    w = {n: t.detach().clone().requires_grad_(True) for n, t in weights.items()}
    total = sum(
        F.cross_entropy(functional_call(model, w, (x,)) / temperature, y) for x, y in batches
    )
    grads = torch.autograd.grad(total, list(w.values()))
    return dict(zip(w, grads, strict=True))


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_equals_weight_times_finite_difference_hessian_gradient(temperature):
    model = _tanh_net()
    batches = _batches()
    theta = {n: p.detach().clone() for n, p in prunable_parameters(model, biases=False).items()}
    g = _loss_grad(model, batches, theta, temperature)
    # Central differences of the gradient along g: (grad(theta + eps g) - grad(theta - eps g))/2eps
    gnorm = torch.sqrt(sum((v**2).sum() for v in g.values()))
    eps = 1e-4 / float(gnorm)
    plus = _loss_grad(model, batches, {n: theta[n] + eps * g[n] for n in theta}, temperature)
    minus = _loss_grad(model, batches, {n: theta[n] - eps * g[n] for n in theta}, temperature)
    hg_fd = {n: (plus[n] - minus[n]) / (2 * eps) for n in theta}

    scores = grasp_scores(model, iter(batches), temperature=temperature)
    assert list(scores) == list(theta)
    for n in theta:
        expected = theta[n] * hg_fd[n]
        scale = float(expected.abs().max())
        assert scale > 0
        torch.testing.assert_close(scores[n], expected, rtol=1e-5, atol=1e-6 * scale)


def test_grasp_is_registered_and_matches_direct_call():
    assert "grasp" in spp.SCORE_METHODS
    model = _tanh_net(3)
    batches = _batches(4)
    via_registry = spp.score(model, "grasp", batches=iter(batches), temperature=1.0)
    direct = grasp_scores(model, iter(batches), temperature=1.0)
    for n in direct:
        torch.testing.assert_close(via_registry[n], direct[n])


def test_higher_keep_score_means_removal_reduces_gradient_flow_more():
    """Wang et al.: removing weight q (delta = -theta_q) changes ||g||^2 by ~ 2 S_q, S = -theta Hg.

    Our keep-score is -S, so shrinking weight q by a fraction t changes ||g||^2 by ~ -2 t keep_q:
    the weights GraSP keeps are those whose removal would reduce gradient flow the most.
    """
    model = _tanh_net(5)
    batches = _batches(6)
    keep = grasp_scores(model, iter(batches), temperature=1.0)
    theta = {n: p.detach().clone() for n, p in prunable_parameters(model, biases=False).items()}

    def flow(w):
        return float(sum((v**2).sum() for v in _loss_grad(model, batches, w, 1.0).values()))

    base, t = flow(theta), 1e-4
    flat = torch.cat([keep[n].flatten() for n in keep])
    names = [(n, i) for n in keep for i in range(keep[n].numel())]
    for pos in (int(flat.argmax()), int(flat.argmin())):
        name, i = names[pos]
        shrunk = {n: v.clone() for n, v in theta.items()}
        shrunk[name].view(-1)[i] *= 1 - t
        change = flow(shrunk) - base
        assert change == pytest.approx(-2 * t * float(flat[pos]), rel=1e-3)
    assert flat.max() > 0 > flat.min()  # both signs occur: the sign convention is exercised


def test_grasp_max_batches_uses_only_the_first_batches():
    model = _tanh_net()
    batches = _batches(n=3)
    capped = grasp_scores(model, iter(batches), temperature=1.0, max_batches=2)
    first_two = grasp_scores(model, iter(batches[:2]), temperature=1.0)
    for n in capped:
        torch.testing.assert_close(capped[n], first_two[n])


def test_grasp_leaves_the_callers_model_untouched_and_bn_mode_matters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    train_mode = grasp_scores(model, iter(_batches()), bn_mode="train", temperature=1.0)
    eval_mode = grasp_scores(model, iter(_batches()), bn_mode="eval", temperature=1.0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed by scoring"
    assert not model.training
    assert not torch.allclose(train_mode["0.weight"], eval_mode["0.weight"])


def test_grasp_bad_input():
    model = _tanh_net()
    with pytest.raises(ValueError, match="batches"):
        grasp_scores(model, None)
    with pytest.raises(ValueError, match="bn_mode"):
        grasp_scores(model, iter(_batches()), bn_mode="frozen")
    with pytest.raises(ValueError, match="temperature"):
        grasp_scores(model, iter(_batches()), temperature=0)
    with pytest.raises(ValueError, match="no scoring batches"):
        grasp_scores(model, iter([]))
