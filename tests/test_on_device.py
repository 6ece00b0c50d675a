"""The engine on the device under test (``SPP_TEST_DEVICE``, default cpu; tests/conftest.py):
masked training with augmentation, the fast path with its CUDA graph, stacked seeds, and a
checkpoint resumed, each on that device. On CPU they run in CI; ``benchmarks/gpu_check.py``
runs them on the GPU (where CUDA kernels need not be bit-identical: the checks are closeness)."""

from __future__ import annotations

import dataclasses

import pytest
import spp
import torch
from spp.data.datasets import DataSplits
from spp.train.fastpath import FastPath
from spp.train.stacked import train_stacked
from spp.train.training import TrainConfig, train
from toy_data import toy_data

CFG = TrainConfig(iterations=20, batch_size=16, lr_decay_every=12, eval_every=10, log_every=5,
                  augment=True, checkpoint_every=5)


def _data(shape=(3, 8, 8), n_train=96, n_eval=48) -> DataSplits:
    return toy_data(n_train, n_eval, shape)


def _net(arch="resnet8", shape=(3, 8, 8), seed=0, sparsity=0.6):
    model = spp.initialize(spp.build_model(arch, shape, 10), "vs-he", seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    mask = {n: torch.rand(w.shape, generator=g) >= sparsity
            for n, w in spp.prunable_parameters(model).items()}
    return model, mask


def _assert_pruned_stay_zero(model, mask):
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        p = params[name]
        assert not p[~keep.to(p.device)].any(), name


def _close_states(a, b, rtol, atol):
    sa = {k: v.cpu() for k, v in a.state_dict().items()}
    sb = {k: v.cpu() for k, v in b.state_dict().items()}
    assert list(sa) == list(sb)
    for name in sa:
        if sa[name].is_floating_point():
            torch.testing.assert_close(sa[name], sb[name], rtol=rtol, atol=atol)
        else:
            assert torch.equal(sa[name], sb[name]), name


def _quiet(_):
    pass


@pytest.mark.parametrize("fast", ["none", "fast path + graph"])
def test_masked_training_with_augmentation(device, fast):
    model, mask = _net()
    f = None if fast == "none" else dataclasses.replace(FastPath.for_device(device),
                                                        cuda_graph=True)
    result = train(model, mask, _data(), CFG, device, log=_quiet, fast=f)
    assert next(model.parameters()).device.type == device.type
    assert result.summary["iterations_run"] == CFG.iterations and not result.summary["diverged"]
    assert [r["iteration"] for r in result.history] == [10, 20]
    assert all(0 <= r["test_error"] <= 100 for r in result.history)
    assert torch.isfinite(torch.tensor([r["train_loss"] for r in result.history])).all()
    _assert_pruned_stay_zero(model, mask)


@pytest.fixture
def no_tf32():
    """Plain fp32 on CUDA (cuDNN allows TF32 by default): a stack and a single run pick other
    kernels, and TF32's 10-bit products would differ by more than summation order."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("arch,shape", [("mlp-3-tanh", (1, 8, 8)), ("resnet8", (3, 8, 8))])
def test_stacked_seeds_match_one_by_one(device, arch, shape, no_tf32):
    """The MLP path (hand-written step) and the vmap path (batch norm, augmentation)."""
    seeds = [0, 1]
    cfg = dataclasses.replace(CFG, augment=shape[0] == 3, checkpoint_every=None)
    data = _data(shape)
    stacked_nets = [_net(arch, shape, s) for s in seeds]
    alone_nets = [_net(arch, shape, s) for s in seeds]
    stacked = train_stacked([m for m, _ in stacked_nets], [k for _, k in stacked_nets], data,
                            cfg, seeds, device, log=_quiet)
    for s, (model, mask), (smodel, _), res in zip(seeds, alone_nets, stacked_nets, stacked,
                                                  strict=True):
        alone = train(model, mask, data, dataclasses.replace(cfg, seed=s), device, log=_quiet)
        for a, b in zip(alone.history, res.history, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3, abs=1e-5)
        _close_states(model, smodel, rtol=1e-3, atol=1e-4)


def test_checkpoint_resumes_on_the_device(device, tmp_path, no_tf32):
    class Kill(Exception):
        pass

    def kill_at_15(line):
        if "iter 15/" in line:
            raise Kill

    ref_model, mask = _net()
    reference = train(ref_model, mask, _data(), CFG, device, log=_quiet)
    ckpt = tmp_path / "c.ckpt"
    with pytest.raises(Kill):
        train(*_net(), _data(), CFG, device, checkpoint_path=ckpt, log=kill_at_15)
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert state["iteration"] == 10
    lines = []
    model, _ = _net()
    resumed = train(model, mask, _data(), CFG, device, checkpoint_path=ckpt, log=lines.append)
    assert any("resumed from" in line and line.endswith("at iteration 10/20") for line in lines)
    if device.type == "cpu":
        assert resumed.history == reference.history
        _close_states(model, ref_model, rtol=0, atol=0)
    else:
        _close_states(model, ref_model, rtol=1e-4, atol=1e-5)
