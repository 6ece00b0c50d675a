"""The training engine: protocol, mask enforcement, determinism, divergence, kill-and-resume."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import random
import runpy
import signal
import subprocess
import sys
import textwrap

import pytest
import spp
import torch
from spp.data import datasets as data
from spp.train.training import (
    SIGTERM_EXIT_STATUS,
    TrainConfig,
    augment_batch,
    summarize,
    train,
)
from torch import nn


@pytest.fixture(scope="module")
def mnist_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("mnist")
    raw = data.fetch("mnist", d / "raw", source="subset")
    data.prepare("mnist", raw, d / "mnist.pt")
    return d / "mnist.pt"


@pytest.fixture(scope="module")
def mnist(mnist_path):
    return data.load(mnist_path)


def small_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10))


def quiet(_line):
    pass


# ---------------------------------------------------------------------------------- protocol


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(iterations=10, batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(iterations=10, batch_size=1, lr=float("nan"))


def test_learning_rate_is_piecewise_constant_by_iteration():
    cfg = TrainConfig(iterations=100, batch_size=1, lr=0.1, lr_decay_every=20)
    assert [cfg.lr_at(i) for i in (0, 19, 20, 39, 40)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001])
    assert TrainConfig(iterations=5, batch_size=1).lr_at(10**6) == 0.1


def test_summary_separates_honest_and_paper_protocol_errors():
    hist = [
        {"iteration": 1, "train_loss": 1.0, "val_error": 20.0, "test_error": 21.0},
        {"iteration": 2, "train_loss": 0.5, "val_error": 10.0, "test_error": 12.0},
        {"iteration": 3, "train_loss": 0.4, "val_error": 10.0, "test_error": 9.0},
        {"iteration": 4, "train_loss": 0.3, "val_error": 11.0, "test_error": 13.0},
    ]
    s = summarize(hist, diverged=False, iterations_run=4)
    # best validation: iteration 2 (earliest of the tie); the paper's number is the minimum test
    assert s["error"] == 12.0 and s["best_iteration"] == 2
    assert s["error_paper_protocol"] == 9.0 and s["final_error"] == 13.0


def test_augmentation_is_a_flip_and_shift_of_each_example():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 8)
    out = augment_batch(x, gen, max_shift=2)

    def shifted(img, dy, dx):
        res = torch.zeros_like(img)
        h, w = img.shape[1:]
        res[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            img[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
        return res

    seen = set()
    for i in range(16):
        matches = [(f, dy, dx) for f in (False, True) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out[i], shifted(x[i].flip(2) if f else x[i], dy, dx))]
        assert matches, f"example {i} is not a flipped/shifted copy"
        seen.add(matches[0])
    assert len(seen) > 4  # independent draws per example
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(0), 2), out)


# --------------------------------------------------------------------------- masks and results


def test_pruned_lenet300_learns_mnist_far_below_chance(mnist):
    from spp.nets.models import build_model

    model = build_model("lenet300", (1, 28, 28), 10)
    try:
        from spp.nets.initializers import initialize
        from spp.pruning.scores import score

        initialize(model, "vs-lecun", seed=0)
        scores = score(model, "snip", batches=itertools.islice(mnist.batches("train", 100), 10))
    except NotImplementedError:
        scores = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(0))
                  for n, p in model.named_parameters() if p.dim() > 1}
    from spp.pruning.masks import global_mask

    mask = global_mask(scores, 0.9)
    cfg = TrainConfig(iterations=300, batch_size=100, eval_every=100, seed=0)
    result = train(model, mask, mnist, cfg, "cpu", log=quiet)
    assert result.summary["error"] < 20.0, result.summary  # chance is 90%
    assert not result.summary["diverged"] and result.summary["iterations_run"] == 300
    assert [r["iteration"] for r in result.history] == [100, 200, 300]
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        assert (params[name][~keep] == 0).all(), name  # exactly zero despite momentum and wd


def test_pruned_weights_are_zero_after_each_of_the_first_steps(mnist):
    mask = {"1.weight": torch.rand(32, 784, generator=torch.Generator().manual_seed(1)) < 0.2,
            "3.weight": torch.ones(10, 32, dtype=torch.bool)}
    for steps in (1, 2, 3):  # momentum and weight decay act from the second step on
        m = small_mlp()
        train(m, mask, mnist, TrainConfig(iterations=steps, batch_size=50), "cpu", log=quiet)
        assert (m[1].weight[~mask["1.weight"]] == 0).all()
        assert (m[1].weight[mask["1.weight"]] != 0).all()


def test_disconnected_network_trains_to_chance_without_crashing(mnist):
    model = small_mlp()
    mask = {"1.weight": torch.zeros(32, 784, dtype=torch.bool),
            "3.weight": torch.ones(10, 32, dtype=torch.bool)}
    cfg = TrainConfig(iterations=100, batch_size=100, eval_every=50)
    result = train(model, mask, mnist, cfg, "cpu", log=quiet)
    assert not result.summary["diverged"]
    assert 80.0 <= result.summary["final_error"] <= 95.0  # ~90%: no information gets through


def test_huge_learning_rate_is_reported_diverged(mnist):
    lines = []
    cfg = TrainConfig(iterations=400, batch_size=100, lr=1e6, eval_every=200, log_every=20)
    result = train(small_mlp(), None, mnist, cfg, "cpu", log=lines.append)
    s = result.summary
    assert s["diverged"] and s["iterations_run"] < 400
    assert s["error"] is None and result.history == []  # no good evaluation to keep
    assert any("diverged" in line for line in lines)


class BlowsUpAfter(nn.Module):
    """A model whose training-mode output becomes non-finite after a number of steps."""

    def __init__(self, steps):
        super().__init__()
        self.net, self.steps, self.calls = small_mlp(), steps, 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls > self.steps:
                out = out * float("inf")
        return out


def test_divergence_keeps_the_last_good_evaluation(mnist):
    cfg = TrainConfig(iterations=100, batch_size=100, eval_every=10, log_every=10)
    result = train(BlowsUpAfter(25), None, mnist, cfg, "cpu", log=quiet)
    s = result.summary
    assert s["diverged"] and s["iterations_run"] == 30  # detected at the next read point
    assert [r["iteration"] for r in result.history] == [10, 20]
    assert s["final_error"] == result.history[-1]["test_error"] < 90


def test_same_seed_same_weights_bit_for_bit(mnist):
    cfg = TrainConfig(iterations=30, batch_size=50, eval_every=15, augment=True, seed=3)
    runs = []
    for seed in (3, 3, 4):
        cfg.seed = seed
        m = small_mlp()
        r = train(m, None, mnist, cfg, "cpu", log=quiet)
        runs.append((m.state_dict(), r.history))
    assert all(torch.equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])
    assert runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0]["1.weight"], runs[2][0]["1.weight"])


def test_log_lines_report_iteration_loss_and_speed(mnist):
    lines = []
    train(small_mlp(), None, mnist, TrainConfig(iterations=20, batch_size=50, eval_every=20,
                                               log_every=10), "cpu", log=lines.append)
    progress = [ln for ln in lines if ln.startswith("[train] iter")]
    assert len(progress) == 2 and "it/s" in progress[0] and "loss" in progress[0]
    assert any(ln.startswith("[eval] iter 20") for ln in lines)


# -------------------------------------------------------------------------- kill and resume

CHILD = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    from spp.data import datasets as data
    from spp.train.training import TrainConfig, train

    def run(data_path, ckpt, log):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # float sums depend on the thread count; keep it fixed
        try:
            return _run(data_path, ckpt, log)
        finally:
            torch.set_num_threads(threads)

    def _run(data_path, ckpt, log):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10))
        mask = {"1.weight": torch.rand(32, 784, generator=torch.Generator().manual_seed(5)) < 0.5,
                "3.weight": torch.ones(10, 32, dtype=torch.bool)}
        cfg = TrainConfig(iterations=120, batch_size=64, lr=0.1, lr_decay_every=50,
                          eval_every=30, augment=True, checkpoint_every=7, log_every=1, seed=11)
        result = train(model, mask, data.load(data_path), cfg, "cpu", checkpoint_path=ckpt,
                       log=log)
        return model.state_dict(), {"summary": result.summary, "history": result.history}

    if __name__ == "__main__":
        def log(line):
            print(line, flush=True)
            time.sleep(0.005)  # slow enough that the parent can stop it mid-run
        run(sys.argv[1], sys.argv[2], log)
""")


def _run_child(script, args, stop_at, sig):
    """Run the child script and send it ``sig`` once it reports iteration ``stop_at``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = []
    for line in proc.stdout:
        out.append(line)
        if stop_at is not None and line.startswith(f"[train] iter {stop_at}/"):
            proc.send_signal(sig)
            stop_at = None
    proc.wait(timeout=120)
    return proc.returncode, "".join(out)


@pytest.fixture(scope="module")
def child(tmp_path_factory, mnist_path):
    """The child script, and the result of an uninterrupted run of it (in this process: the
    resumed runs below also run here, so resuming works across processes too)."""
    d = tmp_path_factory.mktemp("resume")
    script = d / "child.py"
    script.write_text(CHILD)
    run = runpy.run_path(str(script))["run"]
    return script, run, d, run(mnist_path, None, quiet)


def _assert_same(reference, resumed):
    (w_ref, m_ref), (w_res, m_res) = reference, resumed
    assert all(torch.equal(w_ref[k], w_res[k]) for k in w_ref)  # bit for bit
    assert m_ref == m_res


def test_sigkill_at_a_random_iteration_then_resume_is_bit_identical(child, mnist_path):
    script, run, d, reference = child
    stop = random.Random(os.urandom(8)).randint(8, 110)
    ckpt = d / "kill.ckpt"
    rc, log = _run_child(script, [mnist_path, ckpt], stop_at=stop, sig=signal.SIGKILL)
    assert rc == -signal.SIGKILL, f"child was not killed at iteration {stop}:\n{log}"
    state = torch.load(ckpt, weights_only=True)
    assert 0 < state["iteration"] < 120 and state["iteration"] % 7 == 0
    lines = []
    resumed = run(mnist_path, ckpt, lines.append)
    assert lines[0] == f"[train] resumed from {ckpt} at iteration {state['iteration']}/120"
    _assert_same(reference, resumed)


def test_sigterm_checkpoints_exits_143_and_resumes_bit_identically(child, mnist_path):
    script, run, d, reference = child
    ckpt = d / "term.ckpt"
    rc, log = _run_child(script, [mnist_path, ckpt], stop_at=45, sig=signal.SIGTERM)
    assert rc == SIGTERM_EXIT_STATUS, log
    assert "SIGTERM: checkpoint written" in log and "Traceback" not in log
    state = torch.load(ckpt, weights_only=True)
    assert 45 <= state["iteration"] < 120  # the step it was in, not the last periodic one
    lines = []
    resumed = run(mnist_path, ckpt, lines.append)
    assert lines[0] == f"[train] resumed from {ckpt} at iteration {state['iteration']}/120"
    _assert_same(reference, resumed)


def test_resume_refuses_a_checkpoint_of_another_configuration(mnist, tmp_path):
    cfg = TrainConfig(iterations=10, batch_size=50, eval_every=10, checkpoint_every=5)
    train(small_mlp(), None, mnist, cfg, "cpu", checkpoint_path=tmp_path / "c.ckpt", log=quiet)
    cfg.seed = 1
    with pytest.raises(ValueError, match="written with other settings"):
        train(small_mlp(), None, mnist, cfg, "cpu", checkpoint_path=tmp_path / "c.ckpt",
              log=quiet)


def test_complete_checkpoint_returns_the_stored_result(mnist, tmp_path):
    cfg = TrainConfig(iterations=20, batch_size=50, eval_every=10)
    m1 = small_mlp()
    r1 = train(m1, None, mnist, cfg, "cpu", checkpoint_path=tmp_path / "c.ckpt", log=quiet)
    assert (tmp_path / "c.ckpt").exists()  # left for the caller to remove after its outputs
    m2 = small_mlp()
    r2 = train(m2, None, mnist, cfg, "cpu", checkpoint_path=tmp_path / "c.ckpt", log=quiet)
    assert r2.summary == r1.summary and r2.history == r1.history
    assert torch.equal(m1[1].weight, m2[1].weight)


@pytest.mark.parametrize("change", ["init", "mask", "data"])
def test_a_checkpoint_of_other_inputs_is_discarded_and_said_so(mnist, tmp_path, change):
    """Issue: an upstream change (a rebuilt score and mask) resumed weights trained under the old
    mask. The checkpoint records what it trained from; other inputs mean a fresh start."""
    cfg = TrainConfig(iterations=30, batch_size=50, eval_every=10, checkpoint_every=10)
    ckpt = tmp_path / "c.ckpt"

    class Stop(Exception):
        pass

    def stop_at_20(line):
        if "[eval] iter 20 " in line:
            raise Stop

    with pytest.raises(Stop):  # interrupted after its checkpoint at 10
        train(small_mlp(), None, mnist, cfg, "cpu", checkpoint_path=ckpt, log=stop_at_20)
    assert ckpt.exists()
    model, mask, data = small_mlp(), None, mnist
    if change == "init":
        model = small_mlp(seed=9)
    elif change == "mask":
        mask = spp.global_mask(spp.score(model, "random", seed=0), 0.5)
    else:
        data = dataclasses.replace(mnist, y={**mnist.y, "train": mnist.y["train"].flip(0)})
    fresh_model = copy.deepcopy(model)
    lines = []
    got = train(model, mask, data, cfg, "cpu", checkpoint_path=ckpt, log=lines.append)
    assert lines[0].startswith(f"[train] discarding checkpoint {ckpt}: it was trained from other")
    assert not any("resumed" in line for line in lines)
    if mask is not None:
        spp.apply_mask(fresh_model, mask)
    want = train(fresh_model, mask, data, cfg, "cpu", log=quiet)
    assert got.summary == want.summary and got.history == want.history


def test_inputs_fingerprint_covers_batch_norm_counters_and_changes_with_the_mask(mnist):
    from spp.train.training import inputs_fingerprint

    model = spp.build_model("resnet8", (1, 28, 28), 10, width=0.25)  # 0-dim BN counters
    state = model.state_dict()
    a = inputs_fingerprint([state], [None], mnist)
    assert a == inputs_fingerprint([model.state_dict()], [None], mnist)
    mask = spp.global_mask(spp.score(model, "random", seed=0), 0.5)
    assert inputs_fingerprint([state], [mask], mnist) != a
