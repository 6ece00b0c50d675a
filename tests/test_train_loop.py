"""The one training loop (spp.train.train_loop) behind both engines: train() for one nn.Module and
train_stacked() for stacked seeds are a stepper each, driven through the same run_training."""

from __future__ import annotations

import dataclasses
import signal
import threading

import pytest
import spp
import spp.train.stacked
import spp.train.train_loop
import spp.train.training
import torch
from spp.data.datasets import DataSplits
from spp.train.stacked import StackedStepper, train_stacked
from spp.train.train_loop import CHECKPOINT_FORMAT, TrainingInterrupted
from spp.train.training import ModuleStepper, TrainConfig, train

SEEDS = [3, 4]


def _data(n_train=300, n_eval=100) -> DataSplits:
    """Learnable toy data: the label is which of 10 random templates an image is near."""
    g = torch.Generator().manual_seed(0)
    templates = torch.rand(10, 1, 8, 8, generator=g)

    def split(n):
        y = torch.randint(0, 10, (n,), generator=g)
        return (templates[y] * 200 + torch.rand(n, 1, 8, 8, generator=g) * 55).to(torch.uint8), y

    xs, ys = zip(*(split(n) for n in (n_train, n_eval, n_eval)), strict=True)
    names = ("train", "val", "test")
    return DataSplits("toy", 10, (1, 8, 8), torch.full((1,), 0.4), torch.full((1,), 0.3),
                      dict(zip(names, xs, strict=True)), dict(zip(names, ys, strict=True)))


def _models():
    return [spp.initialize(spp.build_model("mlp-4-tanh", (1, 8, 8), 10), "vs-lecun", seed=s)
            for s in SEEDS]


def _masks(models):
    """The first seed dense, the second 70% sparse."""
    g = torch.Generator().manual_seed(7)
    return [None, {n: torch.rand(w.shape, generator=g) < 0.3
                   for n, w in spp.prunable_parameters(models[1]).items()}]


CFG = TrainConfig(iterations=90, batch_size=40, eval_every=30, log_every=15, checkpoint_every=20,
                  augment=False)


def _run(engine, models, masks, data, ckpt=None, log=lambda _: None, cfg=CFG):
    """Both seeds through ``engine``: "module" trains them one by one (one checkpoint each),
    "stacked" as one stack (one checkpoint)."""
    if engine == "stacked":
        return train_stacked(models, masks, data, cfg, SEEDS, checkpoint_path=ckpt, log=log)
    return [train(m, k, data, dataclasses.replace(cfg, seed=s), log=log,
                  checkpoint_path=None if ckpt is None else f"{ckpt}.seed{s}")
            for m, k, s in zip(models, masks, SEEDS, strict=True)]


def _checkpoints(engine, ckpt):
    return [ckpt] if engine == "stacked" else [ckpt.with_name(f"{ckpt.name}.seed{s}")
                                               for s in SEEDS]


def _assert_bit_identical(a_results, b_results, a_models, b_models):
    for a, b in zip(a_results, b_results, strict=True):
        assert a.summary == b.summary and a.history == b.history
    for ma, mb in zip(a_models, b_models, strict=True):
        for (n, pa), (_, pb) in zip(ma.state_dict().items(), mb.state_dict().items(),
                                    strict=True):
            assert torch.equal(pa, pb), n


def test_both_engines_are_one_loop_with_a_stepper_each(monkeypatch):
    """train() and train_stacked() hand their stepper to the same run_training, and the two
    steppers produce the same runs (up to the stack's float rounding)."""
    calls = []
    loop = spp.train.train_loop.run_training

    def recording(stepper, *args, **kwargs):
        calls.append(type(stepper))
        return loop(stepper, *args, **kwargs)

    monkeypatch.setattr(spp.train.training, "run_training", recording)
    monkeypatch.setattr(spp.train.stacked, "run_training", recording)
    data = _data()
    alone, together = _models(), _models()
    masks = _masks(alone)
    res_alone = _run("module", alone, masks, data)
    res_together = _run("stacked", together, masks, data)
    assert calls == [ModuleStepper, ModuleStepper, StackedStepper]
    for a, t in zip(res_alone, res_together, strict=True):
        assert a.summary["iterations_run"] == t.summary["iterations_run"] == 90
        assert [r["iteration"] for r in a.history] == [r["iteration"] for r in t.history] == [
            30, 60, 90]
        for ra, rt in zip(a.history, t.history, strict=True):
            assert ra["val_error"] == rt["val_error"] and ra["test_error"] == rt["test_error"]
            assert ra["train_loss"] == pytest.approx(rt["train_loss"], rel=1e-5)


@pytest.mark.parametrize("engine", ["module", "stacked"])
def test_one_checkpoint_layout_for_both_steppers(engine, tmp_path):
    _run(engine, _models(), _masks(_models()), _data(), ckpt=tmp_path / "c.ckpt",
         cfg=dataclasses.replace(CFG, iterations=20))
    loop_keys = {"format", "stepper", "config", "seeds", "inputs", "iteration", "generators",
                 "perms", "pos", "loss_sum", "loss_n", "log_sum", "log_n", "histories",
                 "diverged", "stopped_at", "optimizer"}
    own = {"module": {"model", "torch_rng", "cuda_rng"}, "stacked": {"params", "buffers", "frozen"}}
    for path in _checkpoints(engine, tmp_path / "c.ckpt"):
        state = torch.load(path, weights_only=True)
        assert state["format"] == CHECKPOINT_FORMAT and state["iteration"] == 20
        assert set(state) == loop_keys | own[engine]


class _Kill(Exception):
    pass


def _kill_at(engine, masks, data, ckpt, marker: str) -> None:
    """Run until a log line holds ``marker``, then die as a killed process would."""

    def killer(line):
        if marker in line:
            raise _Kill

    with pytest.raises(_Kill):
        _run(engine, _models(), masks, data, ckpt=ckpt, log=killer)


@pytest.mark.parametrize("engine", ["module", "stacked"])
def test_killed_then_resumed_is_bit_identical_for_both_steppers(engine, tmp_path):
    data = _data()
    masks = _masks(_models())
    reference_models = _models()
    reference = _run(engine, reference_models, masks, data)

    _kill_at(engine, masks, data, tmp_path / "c.ckpt", "iter 75/")  # after its checkpoint at 60
    lines = []
    resumed_models = _models()  # a new process starts from the init again
    resumed = _run(engine, resumed_models, masks, data, ckpt=tmp_path / "c.ckpt",
                   log=lines.append)
    assert any(line.endswith("at iteration 60/90") and "resumed from" in line for line in lines)
    # only the first seed of the one-by-one engine was killed: the second one started afresh
    _assert_bit_identical(reference, resumed, reference_models, resumed_models)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="the SIGTERM handler is installed from the main thread only")
@pytest.mark.parametrize("engine", ["module", "stacked"])
def test_sigterm_checkpoints_and_exits_for_both_steppers(engine, tmp_path):
    data = _data()
    masks = _masks(_models())
    reference_models = _models()
    reference = _run(engine, reference_models, masks, data)

    def terminate_at_45(line):
        if "iter 45/" in line:
            signal.raise_signal(signal.SIGTERM)  # what SLURM sends before a time limit

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as exc:
        _run(engine, _models(), masks, data, ckpt=tmp_path / "c.ckpt", log=terminate_at_45)
    assert exc.value.code == spp.train.training.SIGTERM_EXIT_STATUS and exc.value.iteration == 45
    assert torch.load(_checkpoints(engine, tmp_path / "c.ckpt")[0],
                      weights_only=True)["iteration"] == 45  # this step, not the periodic one
    assert signal.getsignal(signal.SIGTERM) == before  # the loop's handler is gone
    resumed_models = _models()
    resumed = _run(engine, resumed_models, masks, data, ckpt=tmp_path / "c.ckpt")
    _assert_bit_identical(reference, resumed, reference_models, resumed_models)


def test_a_checkpoint_is_resumed_only_by_the_stepper_kind_that_wrote_it(tmp_path):
    """A one-seed stack and a module of the same inputs agree on everything but the stepper
    state the checkpoint holds."""
    data = _data()
    ckpt = tmp_path / "c.ckpt"
    cfg = dataclasses.replace(CFG, iterations=20, seed=SEEDS[0])
    train_stacked(_models()[:1], [None], data, cfg, SEEDS[:1], checkpoint_path=ckpt,
                  log=lambda _: None)
    with pytest.raises(ValueError, match="not a train checkpoint"):
        train(_models()[0], None, data, cfg, checkpoint_path=ckpt, log=lambda _: None)


def _as_version_1(state: dict, engine: str) -> dict:
    """A checkpoint in the layout the engines wrote before they shared the loop."""
    if engine == "stacked":
        old = {k: v for k, v in state.items() if k != "stepper"}
        return {**old, "format": "spp-stacked-checkpoint/1"}
    loop = ("stepper", "seeds", "generators", "perms", "histories", "stopped_at")
    old = {k: v for k, v in state.items() if k not in loop}
    return {**old, "format": "spp-train-checkpoint/1",
            "config": dataclasses.asdict(dataclasses.replace(CFG, seed=state["seeds"][0])),
            "generator": state["generators"][0], "perm": state["perms"][0],
            "loss_sum": state["loss_sum"].reshape(()), "log_sum": state["log_sum"].reshape(()),
            "history": state["histories"][0], "diverged": state["diverged"][0]}


@pytest.mark.parametrize("engine", ["module", "stacked"])
def test_a_version_1_checkpoint_still_resumes(engine, tmp_path):
    """A job killed before the update resumes after it, bit-identically."""
    data = _data()
    masks = _masks(_models())
    reference_models = _models()
    reference = _run(engine, reference_models, masks, data)

    _kill_at(engine, masks, data, tmp_path / "c.ckpt", "iter 45/")  # after its checkpoint at 40
    path = _checkpoints(engine, tmp_path / "c.ckpt")[0]
    torch.save(_as_version_1(torch.load(path, weights_only=True), engine), path)
    lines = []
    resumed_models = _models()
    resumed = _run(engine, resumed_models, masks, data, ckpt=tmp_path / "c.ckpt",
                   log=lines.append)
    assert any("resumed from" in line and line.endswith("at iteration 40/90") for line in lines)
    _assert_bit_identical(reference, resumed, reference_models, resumed_models)


def test_a_diverged_run_stops_alone_in_both_steppers():
    """One loop, one divergence rule: the diverging seed stops with its last good evaluation,
    the other seed trains on; one by one or stacked alike."""
    data = _data()
    cfg = dataclasses.replace(CFG, checkpoint_every=None)
    runs = {}
    for engine in ("module", "stacked"):
        models = [spp.initialize(spp.build_model("mlp-3-relu", (1, 8, 8), 10), "vs-he", seed=s)
                  for s in SEEDS]
        with torch.no_grad():  # the first seed starts with exploding weights: inf loss
            for p in models[0].parameters():
                p.mul_(1e12)
        runs[engine] = _run(engine, models, [None, None], data, cfg=cfg)
    for engine, (bad, good) in runs.items():
        assert bad.summary["diverged"] and bad.summary["iterations_run"] < 90, engine
        assert not good.summary["diverged"] and good.summary["iterations_run"] == 90, engine
    assert runs["module"][0].summary == runs["stacked"][0].summary
    assert runs["module"][0].history == runs["stacked"][0].history
