"""The training step captured as a CUDA graph (spp.train.graph_step): on CPU, the same static-buffer
step without the capture is bit-identical to the plain step; a stand-in capture that bakes the lr
in, as a CUDA graph does, shows when a re-capture is due; on CUDA, the real graph."""

from __future__ import annotations

import dataclasses

import pytest
import spp
import torch
from spp.train.fastpath import FastPath
from spp.train.graph_step import GraphStepper, capture_step
from spp.train.train_loop import run_training
from spp.train.training import AUGMENTATIONS, ModuleStepper, TrainConfig, on_device, train
from toy_data import toy_data

CFG = TrainConfig(iterations=14, batch_size=16, lr_decay_every=7, eval_every=7, log_every=7,
                  augment=True, checkpoint_every=4)


_data = toy_data


def _net(arch="resnet8", shape=(3, 8, 8), sparsity=0.5):
    """A batch-norm ResNet (or an MLP) with a random mask over its prunable parameters."""
    model = spp.initialize(spp.build_model(arch, shape, 10), "vs-he", seed=0)
    g = torch.Generator().manual_seed(1)
    mask = {n: torch.rand(w.shape, generator=g) >= sparsity
            for n, w in spp.prunable_parameters(model).items()}
    return model, mask


class BakedLr:
    """A stand-in for CUDA graph capture on CPU: the captured update is recorded, not run, and
    every replay runs it with the learning rates of the capture moment (a CUDA graph holds them
    as kernel arguments), writing its gradients afresh (a graph rewrites, never accumulates)."""

    def __init__(self):
        self.optimizer = None

    def warm(self, fn):
        return fn()

    def capture(self, fn):
        opt = self.optimizer
        baked = [g["lr"] for g in opt.param_groups]
        out = torch.zeros(())

        def replay():
            live = [g["lr"] for g in opt.param_groups]
            for g, lr in zip(opt.param_groups, baked, strict=True):
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            try:
                out.copy_(fn())
            finally:
                for g, lr in zip(opt.param_groups, live, strict=True):
                    g["lr"] = lr

        return replay, out


def _plain(stepper):
    return stepper


def _static(stepper):
    return GraphStepper(stepper, capture=False)


def _baked(stepper):
    graphs = BakedLr()
    graphs.optimizer = stepper.optimizer
    return GraphStepper(stepper, capture=True, graphs=graphs)


def _train(wrap, cfg=CFG, net=None, data=None, ckpt=None, log=lambda _: None, keep=None):
    """One run through ``run_training`` with the ModuleStepper that train() builds, wrapped by
    ``wrap``; (result, model)."""
    model, mask = net if net is not None else _net()
    device, data, n_train = on_device(data if data is not None else _data(), cfg, "cpu")
    stepper = wrap(ModuleStepper(model, mask, data, cfg, device, FastPath()))
    if keep is not None:
        keep.append(stepper)
    (result,) = run_training(stepper, cfg, [cfg.seed], n_train, device, ckpt, log)
    return result, model


def _assert_bit_identical(a, b):
    (ra, ma), (rb, mb) = a, b
    assert ra.summary == rb.summary and ra.history == rb.history
    sa, sb = ma.state_dict(), mb.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_static_buffer_step_is_bit_identical_to_the_plain_step(augmentation):
    """Batch norm, a mask, augmentation (every kind) and a step decay: the same weights, losses
    and evaluations to the bit after 14 steps."""
    cfg = dataclasses.replace(CFG, augmentation=augmentation)
    steppers = []
    plain = _train(_plain, cfg)
    static = _train(_static, cfg, keep=steppers)
    _assert_bit_identical(plain, static)
    assert steppers[0].eager_steps == cfg.iterations and steppers[0].captures == 0


def test_static_buffer_step_of_an_mlp_without_augmentation():
    cfg = dataclasses.replace(CFG, augment=False)
    net = lambda: _net("mlp-3-tanh", (1, 8, 8), 0.7)  # noqa: E731
    data = _data(shape=(1, 8, 8))
    _assert_bit_identical(_train(_plain, cfg, net(), data), _train(_static, cfg, net(), data))


def test_a_capture_is_replayed_and_redone_when_the_lr_moves():
    """Three warm-up steps, a capture, replays; the decay at 7 releases it, one eager step at the
    new lr, a second capture. Replays of the baked-lr stand-in equal the plain step."""
    steppers = []
    _assert_bit_identical(_train(_plain), _train(_baked, keep=steppers))
    s = steppers[0]
    assert (s.captures, s.eager_steps) == (2, 4)


def test_a_missing_recapture_would_show(monkeypatch):
    """The control: if the graph were kept across the decay it would train at the old lr."""
    monkeypatch.setattr(GraphStepper, "release", lambda self: None)
    plain, stale = _train(_plain), _train(_baked)
    assert plain[0].history[0] == stale[0].history[0]  # before the decay: the same
    assert not torch.equal(plain[1].conv1.weight, stale[1].conv1.weight)


@dataclasses.dataclass
class _Ramp(TrainConfig):
    """A linear warm-up over the first 5 steps, then constant (the lr moves every step)."""

    def lr_at(self, iteration: int) -> float:
        return self.lr * min(1.0, (iteration + 1) / 5)


def test_while_the_lr_ramps_the_step_runs_eagerly_then_is_captured_once():
    cfg = _Ramp(**{f.name: getattr(CFG, f.name) for f in dataclasses.fields(TrainConfig)
                   if f.name != "lr_decay_every"})
    steppers = []
    _assert_bit_identical(_train(_plain, cfg), _train(_baked, cfg, keep=steppers))
    s = steppers[0]
    # steps 1-5 ramp (eager), step 6 has the lr of step 5: captured, replayed to the end
    assert (s.captures, s.eager_steps) == (1, 5)


class _Kill(Exception):
    pass


def _killer(marker):
    def log(line):
        if marker in line:
            raise _Kill

    return log


@pytest.mark.parametrize("first,second", [(_baked, _plain), (_plain, _baked)])
def test_checkpoints_are_interchangeable_with_the_plain_step(first, second, tmp_path):
    """Killed after its checkpoint at 12 (log line at 14 is the last), resumed by the other
    kind of step: bit-identical to an uninterrupted plain run; the resumed graph warms up and
    captures again (the optimiser's tensors are new)."""
    cfg = dataclasses.replace(CFG, log_every=1)
    reference = _train(_plain, cfg)
    ckpt = tmp_path / "c.ckpt"
    with pytest.raises(_Kill):
        _train(first, cfg, ckpt=ckpt, log=_killer("iter 13/"))
    lines, steppers = [], []
    resumed = _train(second, cfg, ckpt=ckpt, log=lines.append, keep=steppers)
    assert any("resumed from" in line and line.endswith("at iteration 12/14") for line in lines)
    _assert_bit_identical(reference, resumed)


def test_cpu_ignores_the_switch():
    fast = FastPath(cuda_graph=True)
    assert fast.enabled and not FastPath().cuda_graph
    model, mask = _net()
    device, data, _ = on_device(_data(), CFG, "cpu")
    stepper = ModuleStepper(model, mask, data, CFG, device, fast)
    assert capture_step(stepper, "cpu") is stepper
    a_model, a_mask = _net()
    b_model, b_mask = _net()
    ra = train(a_model, a_mask, _data(), CFG, log=lambda _: None, fast=fast)
    rb = train(b_model, b_mask, _data(), CFG, log=lambda _: None)
    _assert_bit_identical((ra, a_model), (rb, b_model))


def test_a_compile_mode_with_its_own_graphs_is_refused():
    with pytest.raises(ValueError, match="cuda_graph"):
        FastPath(cuda_graph=True, compile=True, compile_mode="reduce-overhead")
    FastPath(cuda_graph=True, compile=True)  # the default mode makes no graphs: fine


# --------------------------------------------------------------------- on a CUDA GPU


def _cuda_run(fast, cfg=CFG, ckpt=None, log=lambda _: None):
    model, mask = _net()
    result = train(model, mask, _data(), cfg, "cuda", checkpoint_path=ckpt, log=log, fast=fast)
    return result, model, mask


@pytest.mark.cuda
def test_cuda_graph_replays_the_eager_step():
    """fp32, no autotuning: replaying the captured kernels gives the eager step's numbers (to
    float rounding: the same kernels, so in practice the same bits), and pruned weights stay
    exactly zero."""
    eager, e_model, _ = _cuda_run(FastPath())
    graph, g_model, mask = _cuda_run(FastPath(cuda_graph=True))
    assert eager.summary["iterations_run"] == graph.summary["iterations_run"] == CFG.iterations
    for a, b in zip(eager.history, graph.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-6)
    for name, p in g_model.state_dict().items():
        torch.testing.assert_close(p, e_model.state_dict()[name], rtol=1e-4, atol=1e-5)
    params = dict(g_model.named_parameters())
    for name, keep in mask.items():
        assert not params[name][~keep.to(params[name].device)].any(), name


@pytest.mark.cuda
def test_cuda_graph_with_the_whole_fast_path(monkeypatch):
    """bf16 autocast, channels-last, cuDNN autotuning, TF32 and the graph: it captures (twice:
    the decay), trains to a finite loss close to the same fast path without the graph."""
    made = []
    real = GraphStepper.__init__

    def recording(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(GraphStepper, "__init__", recording)
    fast = FastPath.for_device("cuda")
    eager, _, _ = _cuda_run(fast)
    graph, model, mask = _cuda_run(dataclasses.replace(fast, cuda_graph=True))
    assert len(made) == 1 and made[0].captures == 2
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(eager.history, graph.history, strict=True):
        assert torch.isfinite(torch.tensor(b["train_loss"]))
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=2e-2)


@pytest.mark.cuda
def test_cuda_graph_checkpoint_resumes(tmp_path):
    """A graph run killed after its checkpoint at 8 resumes on the GPU (warm-up, new capture)
    and ends close to the uninterrupted run."""
    fast = FastPath(cuda_graph=True)
    cfg = dataclasses.replace(CFG, log_every=1)
    reference, ref_model, _ = _cuda_run(fast, cfg)
    ckpt = tmp_path / "c.ckpt"
    with pytest.raises(_Kill):
        _cuda_run(fast, cfg, ckpt=ckpt, log=_killer("iter 10/"))
    lines = []
    resumed, model, _ = _cuda_run(fast, cfg, ckpt=ckpt, log=lines.append)
    assert any("resumed from" in line and "at iteration 8/14" in line for line in lines)
    for name, p in model.state_dict().items():
        torch.testing.assert_close(p, ref_model.state_dict()[name], rtol=1e-4, atol=1e-5)
