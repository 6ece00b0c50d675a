"""Seed stacking (spp.train.stacked) must be the same computation as training each seed alone."""

from __future__ import annotations

import dataclasses

import pytest
import spp
import torch
import torch.nn.functional as F
from spp.data.datasets import DataSplits
from spp.train.stacked import (
    StackedFunctional,
    StackedMLP,
    StackedModel,
    stack_models,
    train_stacked,
)
from spp.train.training import TrainConfig, train


def _data(shape=(1, 8, 8), n_train=600, n_eval=200, seed=0) -> DataSplits:
    """Small learnable data: the label is which of 10 fixed random templates an image is
    closest to, so losses fall and errors move (equal metrics must mean something)."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(10, *shape, generator=g)

    def split(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = templates[y] * 200 + torch.rand(n, *shape, generator=g) * 55
        return x.round().to(torch.uint8), y

    xs, ys = zip(*(split(n) for n in (n_train, n_eval, n_eval)), strict=True)
    c = shape[0]
    return DataSplits("toy", 10, shape, torch.full((c,), 0.4), torch.full((c,), 0.3),
                      dict(zip(("train", "val", "test"), xs, strict=True)),
                      dict(zip(("train", "val", "test"), ys, strict=True)))


def _models(arch, shape, seeds, scheme="vs-lecun"):
    return [spp.initialize(spp.build_model(arch, shape, 10), scheme, seed=s) for s in seeds]


def _masks(model, seeds):
    """Seed 0: dense (None); seed 1: random 80% sparse; seed 2: 50% with one layer fully pruned."""
    weights = spp.prunable_parameters(model)
    out = []
    for i, _ in enumerate(seeds):
        if i % 3 == 0:
            out.append(None)
            continue
        g = torch.Generator().manual_seed(100 + i)
        keep = 0.2 if i % 3 == 1 else 0.5
        m = {n: torch.rand(w.shape, generator=g) < keep for n, w in weights.items()}
        if i % 3 == 2:
            m[list(m)[2]] = torch.zeros_like(m[list(m)[2]])
        out.append(m)
    return out


def _deepcopy(m):
    import copy

    return copy.deepcopy(m)


def _assert_same_runs(stacked_results, alone_results, stacked_models, alone_models, rtol=1e-5,
                      err_tol=0.0):
    """Same histories, summaries and final weights. ``err_tol`` (percentage points): float
    rounding may flip the argmax of a near-tie example, so conv tests allow one example."""
    for s, (rs, ra) in enumerate(zip(stacked_results, alone_results, strict=True)):
        if err_tol == 0:
            assert rs.summary == ra.summary, f"seed {s}"
        else:
            for k in ("diverged", "iterations_run"):
                assert rs.summary[k] == ra.summary[k], f"seed {s} {k}"
            for k in ("error", "error_paper_protocol", "final_error"):
                assert abs(rs.summary[k] - ra.summary[k]) <= err_tol, f"seed {s} {k}"
        assert len(rs.history) == len(ra.history)
        for hs, ha in zip(rs.history, ra.history, strict=True):
            assert hs["iteration"] == ha["iteration"]
            assert abs(hs["val_error"] - ha["val_error"]) <= err_tol
            assert abs(hs["test_error"] - ha["test_error"]) <= err_tol
            assert hs["train_loss"] == pytest.approx(ha["train_loss"], rel=rtol)
    for ms, ma in zip(stacked_models, alone_models, strict=True):
        for (n, ps), (_, pa) in zip(ms.state_dict().items(), ma.state_dict().items(), strict=True):
            # float rounding only: batched and single matmuls may sum in another order
            torch.testing.assert_close(ps, pa, rtol=rtol, atol=1e-6, msg=n)


@pytest.mark.parametrize("arch,shape", [("mlp-7-tanh", (1, 8, 8)), ("lenet300", (1, 8, 8)),
                                        ("resnet8", (3, 8, 8))])
def test_stacked_forward_and_gradients_equal_per_seed(arch, shape):
    seeds = [0, 1, 2]
    models = _models(arch, shape, seeds, "vs-he")
    stacked = stack_models(models)
    assert isinstance(stacked, StackedMLP if arch != "resnet8" else StackedFunctional)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 16, *shape, generator=g), torch.randint(0, 10, (3, 16), generator=g)
    logits = stacked(x)
    per = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, 16)
    per.mean(1).sum().backward()
    for s, m in enumerate(models):
        out = m(x[s])
        F.cross_entropy(out, y[s]).backward()
        torch.testing.assert_close(logits[s], out, rtol=1e-5, atol=1e-6)
        for n, p in m.named_parameters():
            torch.testing.assert_close(stacked.params[n].grad[s], p.grad, rtol=1e-5, atol=1e-6)
        for n, b in m.named_buffers():  # batch-norm running statistics, per seed
            torch.testing.assert_close(stacked.buffers[n][s], b)


@pytest.mark.parametrize("act", spp.nets.models.ACTIVATIONS)
def test_hand_written_mlp_step_equals_autograd(act):
    """StackedMLP's step (its own backward into reused buffers) against autograd through its
    forward, for every MLP activation, with masked gradients, and across a change of batch size
    (the buffers are rebuilt) and repeated steps (they are reused, not accumulated into)."""
    seeds = [0, 1, 2]
    stacked = stack_models(_models(f"mlp-4-{act}", (1, 8, 8), seeds, "vs-he"))
    assert isinstance(stacked, StackedMLP)
    g = torch.Generator().manual_seed(1)
    stacked.grad_masks = {n: (torch.rand(p.shape, generator=g) < 0.5).float()
                          for n, p in stacked.params.items() if n.endswith("weight")}
    for batch in (16, 16, 5):
        x = torch.randn(3, batch, 1, 8, 8, generator=g) * 2
        y = torch.randint(0, 10, (3 * batch,), generator=g)
        losses = stacked.losses_and_grads(x, y)
        grads = {n: p.grad.clone() for n, p in stacked.params.items()}
        want = StackedModel.losses_and_grads(stacked, x, y)  # the generic step: autograd
        torch.testing.assert_close(losses, want, rtol=1e-6, atol=1e-7)
        for n, p in stacked.params.items():
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-5, atol=1e-6)
            assert grads[n].abs().sum() > 0, n
            if n in stacked.grad_masks:
                assert not grads[n][stacked.grad_masks[n] == 0].any(), n


def test_train_stacked_equals_train_per_seed_mlp_with_masks():
    data = _data()
    seeds = [0, 1, 2]
    cfg = TrainConfig(iterations=300, batch_size=50, lr=0.1, lr_decay_every=200, eval_every=100,
                      log_every=50)
    alone = _models("mlp-7-tanh", (1, 8, 8), seeds, "orthogonal")
    together = [_deepcopy(m) for m in alone]
    masks = _masks(alone[0], seeds)
    # the masks differ: dense, 80% sparse, and one with a fully pruned layer
    assert masks[0] is None and not masks[2][list(masks[2])[2]].any()

    res_alone = [train(m, k, data, dataclasses.replace(cfg, seed=s), log=lambda _: None)
                 for m, k, s in zip(alone, masks, seeds, strict=True)]
    res_together = train_stacked(together, masks, data, cfg, seeds, log=lambda _: None)

    _assert_same_runs(res_together, res_alone, together, alone)
    # the seeds are really different runs, and training really happened
    assert len({r.history[-1]["train_loss"] for r in res_together}) == 3
    assert res_alone[0].history[-1]["train_loss"] < res_alone[0].history[0]["train_loss"]
    for m, k in zip(together[1:], masks[1:], strict=True):
        for n, w in spp.prunable_parameters(m).items():
            assert not w[~k[n]].any(), f"pruned weights of {n} are not exactly zero"


def test_train_stacked_equals_train_with_augmentation_vmap_path():
    """Colour data with flip/translate augmentation drawn per seed, through the vmap stacker.

    20 steps: batched and single convolutions sum in another order, and on random data this
    small batch-norm net amplifies that rounding chaotically (1e-7 after 20 steps, 1e-3 after 40
    with weight decay on the conv weights alone), so a longer run would test the data, not us."""
    data = _data(shape=(3, 8, 8), n_train=200, n_eval=100)
    seeds = [5, 7]
    cfg = TrainConfig(iterations=20, batch_size=20, lr=0.05, eval_every=10, augment=True,
                      translate_px=2, log_every=10)
    alone = _models("resnet8", (3, 8, 8), seeds, "vs-he")
    together = [_deepcopy(m) for m in alone]
    masks = _masks(alone[0], [0, 1])
    res_alone = [train(m, k, data, dataclasses.replace(cfg, seed=s), log=lambda _: None)
                 for m, k, s in zip(alone, masks, seeds, strict=True)]
    res_together = train_stacked(together, masks, data, cfg, seeds, log=lambda _: None)
    _assert_same_runs(res_together, res_alone, together, alone, rtol=1e-4, err_tol=100 / 100)


def test_one_diverging_seed_stops_alone_like_train():
    data = _data()
    seeds = [0, 1, 2]
    cfg = TrainConfig(iterations=200, batch_size=50, eval_every=50, log_every=25)
    alone = _models("mlp-3-relu", (1, 8, 8), seeds, "vs-he")
    with torch.no_grad():  # seed 1 starts with exploding weights: its loss becomes inf
        for p in alone[1].parameters():
            p.mul_(1e12)
    together = [_deepcopy(m) for m in alone]
    masks = [None] * 3
    res_alone = [train(m, k, data, dataclasses.replace(cfg, seed=s), log=lambda _: None)
                 for m, k, s in zip(alone, masks, seeds, strict=True)]
    assert res_alone[1].summary["diverged"] and not res_alone[0].summary["diverged"]
    res_together = train_stacked(together, masks, data, cfg, seeds, log=lambda _: None)
    for s in (0, 2):
        _assert_same_runs([res_together[s]], [res_alone[s]], [together[s]], [alone[s]])
    assert res_together[1].summary == res_alone[1].summary
    assert res_together[1].history == res_alone[1].history


def test_train_stacked_resumes_to_the_same_result(tmp_path):
    data = _data(n_train=300, n_eval=100)
    seeds = [3, 4]
    cfg = TrainConfig(iterations=120, batch_size=40, eval_every=40, log_every=20,
                      checkpoint_every=30)
    first = _models("mlp-4-tanh", (1, 8, 8), seeds)
    second = [_deepcopy(m) for m in first]
    masks = _masks(first[0], [1, 2])
    uninterrupted = train_stacked(first, masks, data, cfg, seeds, log=lambda _: None)

    class Kill(Exception):
        pass

    def killer(line):
        if "iter 100/" in line:
            raise Kill

    ckpt = tmp_path / "group.ckpt"
    with pytest.raises(Kill):
        train_stacked(second, masks, data, cfg, seeds, checkpoint_path=ckpt, log=killer)
    assert ckpt.exists()
    fresh = _models("mlp-4-tanh", (1, 8, 8), seeds)  # a new process starts from the init again
    resumed = train_stacked(fresh, masks, data, cfg, seeds, checkpoint_path=ckpt,
                            log=lambda _: None)
    for a, b in zip(uninterrupted, resumed, strict=True):
        assert a.summary == b.summary and a.history == b.history
    for ma, mb in zip(first, fresh, strict=True):
        for (n, pa), (_, pb) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
            assert torch.equal(pa, pb), n


def test_train_stacked_discards_a_checkpoint_of_other_masks(tmp_path):
    data = _data(n_train=300, n_eval=100)
    seeds = [3, 4]
    cfg = TrainConfig(iterations=60, batch_size=40, eval_every=30, log_every=20,
                      checkpoint_every=30)
    ckpt = tmp_path / "group.ckpt"
    old = _models("mlp-4-tanh", (1, 8, 8), seeds)
    train_stacked(old, _masks(old[0], [1, 2]), data, cfg, seeds, checkpoint_path=ckpt,
                  log=lambda _: None)
    new_masks = _masks(old[0], [0, 1, 2])[1:]  # the upstream mask stage rebuilt: other masks
    lines = []
    got = train_stacked(_models("mlp-4-tanh", (1, 8, 8), seeds), new_masks, data, cfg, seeds,
                        checkpoint_path=ckpt, log=lines.append)
    assert lines[0].startswith("[train] discarding checkpoint")
    want = train_stacked(_models("mlp-4-tanh", (1, 8, 8), seeds), new_masks, data, cfg, seeds,
                         log=lambda _: None)
    assert [r.history for r in got] == [r.history for r in want]


def test_bad_input_is_refused():
    data = _data(n_train=100, n_eval=20)
    cfg = TrainConfig(iterations=1, batch_size=10)
    ms = _models("mlp-2-tanh", (1, 8, 8), [0, 1])
    with pytest.raises(ValueError, match="one mask and one seed per model"):
        train_stacked(ms, [None], data, cfg, [0, 1])
    with pytest.raises(ValueError, match="seeds must be ints"):
        train_stacked(ms, [None, None], data, cfg, [0, "1"])
    with pytest.raises(ValueError, match="only copies of one architecture"):
        stack_models([ms[0], spp.build_model("resnet8", (3, 8, 8), 10)])
    with pytest.raises(ValueError, match="other parameter names/shapes"):
        stack_models([ms[0], spp.build_model("mlp-3-tanh", (1, 8, 8), 10)])
    with pytest.raises(ValueError, match="TrainConfig"):
        train_stacked(ms, [None, None], data, {"iterations": 1}, [0, 1])


def test_stacked_mlp_under_bf16_autocast_matches_per_seed_autocast():
    """Under the fast path's bf16 (CUDA) StackedMLP steps with autograd through its forward;
    CPU autocast exercises the same dtype handling here."""
    models = _models("mlp-4-tanh", (1, 8, 8), [0, 1], "vs-he")
    stacked = stack_models(models)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 16, 1, 8, 8, generator=g), torch.randint(0, 10, (2, 16), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = stacked(x)
        per = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(2, 16)
    assert logits.dtype == torch.bfloat16
    per.float().mean(1).sum().backward()
    for s, m in enumerate(models):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            F.cross_entropy(m(x[s]), y[s]).backward()
        for n, p in m.named_parameters():
            got = stacked.params[n].grad[s]
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, p.grad, rtol=0.05, atol=0.02)
