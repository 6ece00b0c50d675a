"""Pruning scores: connection sensitivity against an independent computation, and the rest."""

from __future__ import annotations

import itertools

import pytest
import spp
import torch
import torch.nn.functional as F
from spp.nets.models import prunable_parameters
from spp.train import losses
from torch import nn


def _small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # Dropout makes train-mode scores random: matching the eval-mode reference checks the mode.
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 5), nn.Tanh(),
        nn.Linear(5, 3),
    )


def _batches(n_batches: int = 3, bs: int = 7, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(bs, 1, 3, 4, generator=gen), torch.randint(0, 3, (bs,), generator=gen))
        for _ in range(n_batches)
    ]


def test_snip_equals_abs_of_summed_grad_times_weight():
    model, data = _small_model(), _batches()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = spp.score(model, "snip", iter(data))

    # Independent: accumulate .grad of each batch-mean loss in eval mode, then |grad * w|.
    ref = _small_model()
    ref.eval()
    for x, y in data:
        F.cross_entropy(ref(x), y).backward()
    expected = {n: (p.grad * p).abs() for n, p in prunable_parameters(ref).items()}

    assert list(scores) == list(expected) == ["1.weight", "1.bias", "4.weight", "4.bias",
                                              "6.weight", "6.bias"]
    for name in expected:
        torch.testing.assert_close(scores[name], expected[name], rtol=1e-5, atol=1e-7)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_snip_takes_abs_after_summing_signed_batches():
    # Per-batch g's disagree in sign somewhere, so |sum g_b| < sum |g_b| there: the score
    # must be the former (the reference test above pins its value).
    model, data = _small_model(), _batches()
    total = spp.score(model, "snip", iter(data))
    per_batch = [spp.score(model, "snip", iter([b])) for b in data]
    for name in total:
        summed_abs = sum(s[name] for s in per_batch)
        assert (total[name] <= summed_abs + 1e-7).all()
        assert (total[name] < summed_abs - 1e-6).any(), name


def test_unsupervised_losses_give_finite_distinct_scores():
    model, data = _small_model(), _batches()
    per_loss = {}
    for loss in losses.LOSSES:
        s = spp.score(model, "snip", iter(data), loss=loss)
        flat = torch.cat([v.reshape(-1) for v in s.values()])
        assert torch.isfinite(flat).all() and flat.sum() > 0, loss
        per_loss[loss] = flat
    for a, b in itertools.combinations(per_loss, 2):
        assert not torch.allclose(per_loss[a], per_loss[b]), (a, b)


def test_loss_definitions():
    model = _small_model().eval()
    x, y = _batches(1)[0]
    z = model(x)
    logp = F.log_softmax(z, dim=1)
    torch.testing.assert_close(losses.uniform(model, x, y), -logp.mean(dim=1).mean())
    t = F.softmax(z, dim=1).mean(dim=0)
    torch.testing.assert_close(losses.prediction_softmax(model, x, y), -(t * logp).sum(1).mean())
    t = z.mean(dim=0)
    torch.testing.assert_close(losses.prediction_raw(model, x, y), -(t * logp).sum(1).mean())


def test_jacobian_losses_match_the_linear_network_jacobian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Linear(6, 4))
    x, y = torch.randn(5, 1, 3, 4), torch.zeros(5, dtype=torch.long)
    jac = model[2].weight @ model[1].weight  # the same for every example
    torch.testing.assert_close(losses.jacobian_l1(model, x, y), jac.abs().sum())
    torch.testing.assert_close(losses.jacobian_l2(model, x, y), torch.linalg.matrix_norm(jac))


def test_random_is_seeded_uniform_and_magnitude_is_abs_weight():
    model = _small_model()
    a, b = spp.score(model, "random", seed=3), spp.score(model, "random", seed=3)
    c = spp.score(model, "random", seed=4)
    for name, p in prunable_parameters(model).items():
        assert torch.equal(a[name], b[name]) and not torch.equal(a[name], c[name])
        assert a[name].shape == p.shape and (a[name] >= 0).all() and (a[name] < 1).all()
    mag = spp.score(model, "magnitude")
    for name, p in prunable_parameters(model).items():
        assert torch.equal(mag[name], p.detach().abs())


def test_bad_inputs_raise_with_the_valid_names():
    model = _small_model()
    with pytest.raises(ValueError, match="snip.*random|random.*snip"):
        spp.score(model, "snipp", iter(_batches()))
    with pytest.raises(ValueError, match="unif"):
        spp.score(model, "snip", iter(_batches()), loss="uniform")
    with pytest.raises(ValueError, match="needs data"):
        spp.score(model, "snip", None)
    with pytest.raises(ValueError, match="no batches"):
        spp.score(model, "snip", iter([]))
    with pytest.raises(ValueError, match="valid options: seed"):
        spp.score(model, "random", loss="unif")
    with pytest.raises(ValueError, match="seed"):
        spp.score(model, "random", seed=1.5)


# ------------------------------------------------------------------ the registry's facts


def test_registry_facts_of_every_method():
    from spp.pruning import scores

    facts = {m: (scores.method_info(m).needs_data, scores.method_info(m).context)
             for m in scores.methods()}
    assert facts == {
        "grasp": (True, ()), "snip": (True, ()), "random": (False, ("seed",)),
        "magnitude": (False, ()), "magnitude-after-training": (False, ()),
        "synflow": (False, ("sparsity", "input_shape", "invert")),
    }
    assert scores.methods(after_training=True) == ("magnitude-after-training",)
    assert spp.SCORE_METHODS == scores.methods(after_training=False)
    assert scores.method_info("magnitude-after-training").base == "magnitude"
    assert "temperature" in scores.method_info("grasp").options
    assert "sparsity" not in scores.method_info("synflow").options  # context, not an option
    with pytest.raises(ValueError, match="unknown score method 'snipp'.*valid methods: grasp"):
        scores.method_info("snipp")


def test_score_in_context_reads_data_only_for_data_methods_and_names_missing_context():
    from spp.pruning import scores

    model = _small_model()
    touched = []

    def batches():
        touched.append(True)
        return _batches()

    for method in ("magnitude", "random"):
        scores.score_in_context(model, method, batches=batches, context={"seed": 3})
    assert touched == []  # data-free methods never load the data
    got = scores.score_in_context(model, "snip", batches=batches, context={"seed": 3})
    assert touched == [True]
    assert got.keys() == spp.score(model, "snip", batches=_batches()).keys()
    # the context a method takes reaches it: the seed changes random scores
    a = scores.score_in_context(model, "random", batches=None, context={"seed": 1})
    b = scores.score_in_context(model, "random", batches=None, context={"seed": 2})
    assert any(not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match=r"'random' needs \['seed'\]"):
        scores.score_in_context(model, "random", batches=None, context={})


def test_a_new_method_is_its_function_and_registry_entry(monkeypatch):
    """What the README's recipe promises: register it, and the facts and `score` know it."""
    from spp.pruning import catalog, scores

    scores.methods()
    monkeypatch.setattr(scores, "_FUNCTIONS", dict(scores._FUNCTIONS))
    monkeypatch.setitem(catalog.METHODS, "negmag", catalog.Method("negmag", needs_data=False))

    @scores.register("negmag")
    def negative_magnitude(model, batches=None):
        return {n: -p.detach().abs() for n, p in prunable_parameters(model).items()}

    assert "negmag" in scores.methods() and not scores.needs_data("negmag")
    model = _small_model()
    got = scores.score_in_context(model, "negmag", batches=None, context={"seed": 0})
    ref = spp.score(model, "magnitude")
    assert all(torch.equal(got[k], -ref[k]) for k in ref)
    with pytest.raises(ValueError, match="registered twice"):
        scores.register("negmag")(negative_magnitude)
    options = r"takes options \('scale',\), spp.pruning.catalog says \(\)"
    with pytest.raises(ValueError, match=options):
        monkeypatch.setitem(catalog.METHODS, "neg2", catalog.Method("neg2", needs_data=False))
        scores.register("neg2")(lambda model, batches=None, scale=1.0: {})


def test_the_registry_loads_every_module_of_the_pruning_package():
    """A new method is one module in spp.pruning: nothing else imports it by name."""
    import pkgutil
    import sys

    import spp.pruning
    from spp.pruning import scores

    scores.methods()
    for m in pkgutil.iter_modules(spp.pruning.__path__):
        assert f"spp.pruning.{m.name}" in sys.modules, m.name
