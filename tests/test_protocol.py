"""Where the authors' code (namhoonlee/spp-public) settles what the paper leaves open, ours follows
it: one test per difference found there (docs/protocol.md lists them)."""

from __future__ import annotations

import math

import pytest
import spp
import torch
import yaml
from spp.data.datasets import DataSplits
from spp.nets.models import BN_EPS, BN_MOMENTUM, build_model, prunable_parameters
from spp.pruning.masks import kept_count
from spp.tables import experiments as X
from spp.train.training import TrainConfig, augment_batch, crop_pad, error_rate, param_groups, train
from torch import nn

# ------------------------------------------------------------------------------------ biases


def _toy_data(n=300, classes=10, seed=0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    x = {s: torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
         for s in ("train", "val", "test")}
    y = {s: torch.randint(0, classes, (n,), generator=g) for s in ("train", "val", "test")}
    return DataSplits("toy", classes, (1, 8, 8), torch.tensor([0.5]), torch.tensor([0.25]), x, y)


def test_biases_are_pruned_with_the_weights_and_stay_zero_in_training():
    """prn_keys takes w and b: zero-initialised biases score 0, so connection sensitivity prunes
    them, the keep count is over weights and biases together, and they stay zero."""
    data = _toy_data()
    model = build_model("mlp-3-tanh", (1, 8, 8), 10)
    spp.initialize(model, "orthogonal", seed=0)
    scores = spp.score(model, "snip", batches=data.batches("train", 100))
    biases = [n for n in scores if n.endswith("bias")]
    assert biases == ["layers.0.bias", "layers.1.bias", "layers.2.bias"]
    assert all(torch.equal(scores[n], torch.zeros_like(scores[n])) for n in biases)
    mask = spp.global_mask(scores, 0.9)
    total = sum(p.numel() for p in prunable_parameters(model).values())
    assert total == 64 * 100 + 100 * 100 + 100 * 10 + 100 + 100 + 10
    assert sum(int(m.sum()) for m in mask.values()) == kept_count(total, 0.9)
    assert not any(mask[n].any() for n in biases)  # every bias pruned
    train(model, mask, data, TrainConfig(iterations=30, batch_size=50, eval_every=30),
          log=lambda _: None)
    for n in biases:
        assert torch.equal(dict(model.named_parameters())[n].detach(),
                           torch.zeros_like(scores[n]))


def test_a_disconnected_bias_free_network_scores_all_zero_logits_not_the_majority_class():
    """The paper's 90.2% for disconnected nets: all-zero logits, argmax picks class 0."""
    data = _toy_data()
    model = build_model("mlp-3-tanh", (1, 8, 8), 10)
    spp.initialize(model, "orthogonal", seed=0)
    mask = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()}
    mask["layers.2.weight"].zero_()  # the last layer cut: nothing reaches the logits
    mask["layers.2.bias"].zero_()
    train(model, mask, data, TrainConfig(iterations=40, batch_size=50, eval_every=40),
          log=lambda _: None)
    logits = model(data.normalize(data.x["test"]))
    assert torch.equal(logits, torch.zeros_like(logits))
    class0 = (data.y["test"] == 0).float().mean().item()
    assert error_rate(model, data, "test") == pytest.approx(100 * (1 - class0))


def test_openlth_methods_prune_weights_only():
    """GraSP and SynFlow (and Frankle et al.'s runs) prune weights and leave biases dense."""
    from spp.frankle.runs import method_scores

    model = build_model("lenet300", (1, 8, 8), 10)
    spp.initialize(model, "vs-he", seed=0)
    s = method_scores("magnitude", model, seed=0)
    assert list(s) == list(prunable_parameters(model, biases=False))
    spp.apply_mask(model, spp.global_mask(s, 0.9))  # a weights-only mask is a valid mask


# ------------------------------------------------------------------------------ weight decay


def test_weight_decay_acts_on_linear_and_conv_parameters_only_never_batch_norm():
    """The original's 2.5e-4 * sum(w^2) over its masked w and b: SGD decay 5e-4 on them."""
    model = build_model("vgg16", (3, 32, 32), 10, width=0.125)
    for m in model.modules():  # non-trivial batch-norm parameters
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    named = dict(model.named_parameters())
    prunable = prunable_parameters(model)
    reg = 2.5e-4 * sum((p ** 2).sum() for p in prunable.values())
    expected = dict(zip(named, torch.autograd.grad(reg, list(named.values()), allow_unused=True),
                        strict=True))
    before = {n: p.detach().clone() for n, p in named.items()}
    cfg = TrainConfig(iterations=1, batch_size=1)
    opt = torch.optim.SGD(param_groups(named, set(prunable), cfg), lr=1.0, momentum=0.0)
    for p in named.values():
        p.grad = torch.zeros_like(p)  # no loss gradient: the step is the decay alone
    opt.step()
    for n, p in named.items():
        want = expected[n] if expected[n] is not None else torch.zeros_like(p)
        torch.testing.assert_close(p.detach(), before[n] - want, rtol=1e-6, atol=1e-9)
        assert torch.equal(p.detach(), before[n]) == (expected[n] is None), n
    assert any(n.startswith("features") and "bn" in n for n in named)  # BN was there, undecayed
    everything = param_groups(named, set(prunable), TrainConfig(1, 1, weight_decay_on="all"))
    assert [g["weight_decay"] for g in everything] == [5e-4]


def test_weight_decay_scope_is_checked():
    with pytest.raises(ValueError, match="weight_decay_on"):
        TrainConfig(1, 1, weight_decay_on="bn")


# -------------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("arch,shape", [("vgg16", (3, 32, 32)), ("resnet20", (3, 32, 32)),
                                        ("wrn-16-2", (3, 64, 64))])
def test_batch_norm_uses_tensorflow_defaults(arch, shape):
    """tf.layers.batch_normalization: epsilon 1e-3, moving averages with decay 0.99."""
    model = build_model(arch, shape, 10, width=0.25)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.eps == BN_EPS == 1e-3 and m.momentum == BN_MOMENTUM == 0.01
                       for m in bns)
    bn = bns[0]
    x = torch.randn(16, bn.num_features, 4, 4) + 3.0
    bn.train()(x)  # one moving-average update: 0.99 * 0 + 0.01 * batch mean
    torch.testing.assert_close(bn.running_mean, 0.01 * x.mean((0, 2, 3)))


# ------------------------------------------------------------------------------ augmentation


def _markers(b, h=20, w=20, row=10, col=4):
    x = torch.zeros(b, 1, h, w)
    x[:, 0, row, col] = 1.0
    return x


def _binomial_ok(count, n, p, sigmas=5.0):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_augmentation_frequencies_follow_imgaug_someof():
    """SomeOf((0, None), [Fliplr(0.5), Affine(translate_px=(-4, 4))]): the number of children
    is uniform in {0, 1, 2}, so P(flip) = 1/2 * 1/2 = 1/4, P(moved) = 1/2 * 80/81, and
    P(flipped and moved) = 1/3 * 1/2 * 80/81 (both children drawn, the flip coming up)."""
    n = 30000
    out = augment_batch(_markers(n), torch.Generator().manual_seed(0), 4)
    flat = out.view(n, -1)
    assert torch.equal(flat.sum(1), torch.ones(n))  # the marker never leaves a 20x20 frame
    pos = flat.argmax(1)
    row, col = pos // 20, pos % 20
    flipped = col >= 10  # unflipped col 4 +- 4 lies in [0, 8]; flipped 15 +- 4 in [11, 19]
    moved = (row != 10) | torch.where(flipped, col != 15, col != 4)
    assert _binomial_ok(int(flipped.sum()), n, 1 / 4)
    assert _binomial_ok(int(moved.sum()), n, 1 / 2 * 80 / 81)
    assert _binomial_ok(int((flipped & moved).sum()), n, 1 / 3 * 1 / 2 * 80 / 81)
    shifts = (row - 10)[moved]
    assert shifts.min() == -4 and shifts.max() == 4  # translate_px (-4, 4), integers


def test_crop_pad_is_a_crop_or_zero_pad_of_each_side_resized_back():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, 16, 16, generator=g)
    # rows: top, right, bottom, left
    sides = torch.tensor([[4, -3, 0], [-2, 5, 8], [0, -8, 2], [6, 1, -5]])
    out = crop_pad(x, sides)
    for k in range(3):
        t, r, b, left = (int(v) for v in sides[:, k])
        ref = torch.nn.functional.pad(x[k:k + 1], (left, r, t, b))  # negative = crop
        ref = torch.nn.functional.interpolate(ref, size=(16, 16), mode="bilinear",
                                              align_corners=False)
        # at the edges the two differ by under a pixel: interpolate clamps to the crop's last
        # row, grid_sample blends in the cropped-away neighbour (or the zero padding)
        inner = slice(2, -2)
        torch.testing.assert_close(out[k, :, inner, inner], ref[0, :, inner, inner],
                                   rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(crop_pad(x, torch.zeros(4, 3, dtype=torch.long)), x)


def test_crop_pad_augmentation_touches_half_of_the_images():
    n = 4000
    x = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    out = augment_batch(x, torch.Generator().manual_seed(3), 8, kind="crop-pad")
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    # untouched: no child (1/3), or the flip alone (1/6) not coming up (1/2)
    assert _binomial_ok(int(same.sum()), n, 1 / 3 + 1 / 12)
    assert _binomial_ok(int(mirrored.sum()), n, 1 / 12)  # the flip alone, coming up


# --------------------------------------------------------------------------- networks, tables


def test_wrn16_is_the_originals_k6_in_every_preset(repo_root):
    for name in ("config.yaml", "paper.yaml"):
        cfg = yaml.safe_load((repo_root / "config" / name).read_text())
        wrn = [c for c in cfg["table2"]["columns"] if c["name"] == "WRN16"]
        assert [c["arch"] for c in wrn] == ["wrn-16-6"], name


def _table_cfg(**over):
    t1 = {"dataset": "mnist", "arch": "mlp-7-tanh", "gammas": [1e-4, 1.0], "loss": "supervised",
          "sparsity": 0.9, "reinit": "vs-lecun", **over}
    return {"seeds": [0, 1], "table1": t1}


def test_table1_trains_each_mask_from_the_pruning_init_and_from_a_vs_init():
    rows = X.table1_rows(_table_cfg())
    for row in rows:
        main, reinit = row["runs"]["main"], row["runs"]["reinit"]
        assert main.weights_dir("R") == main.stage_dir("R", "init")  # the code as published
        assert reinit.stage_dir("R", "mask") == main.stage_dir("R", "mask")  # the same mask
        assert reinit.weights_dir("R") == "R/init/mnist/mlp-7-tanh_default_w1/vs-lecun"
        assert reinit.stage_dir("R", "train") != main.stage_dir("R", "train")
        assert row["needs"]["reinit"] == ("train",)
    assert all("reinit" not in r["runs"] for r in X.table1_rows(_table_cfg(reinit=None)))


def test_table5_data_free_cells_are_trained_once_per_training_set():
    t5 = {"arch": "lenet300", "init": "orthogonal", "sparsity": 0.97, "supervised_loss":
          "supervised", "unsupervised_loss": "unif", "random": True,
          "rows": [{"prune": "mnist", "train": "mnist"}, {"prune": "fashion-mnist",
                                                           "train": "mnist"}]}
    rows = X.table5_rows({"table5": t5})
    assert rows[0]["runs"]["rand"] == rows[1]["runs"]["rand"]  # one net, one training
    assert rows[0]["runs"]["unsup"] != rows[1]["runs"]["unsup"]  # data-dependent: two


# ------------------------------------------------------------------- library errors (issue 13)


def test_library_errors_name_the_problem():
    empty = nn.Sequential(nn.Flatten())
    with pytest.raises(ValueError, match="no linear or conv layer"):
        spp.score(empty, "magnitude")
    with pytest.raises(ValueError, match="no linear or conv layer"):
        spp.orthogonality_score(empty)
    model = build_model("mlp-3-tanh", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="unknown init scheme 'nonsense'"):
        spp.initialize(model, "nonsense")
    with pytest.raises(ValueError, match="needs seed=<int>"):
        spp.initialize(model, "orthogonal")


def test_a_retried_job_keeps_the_failed_attempts_log(tmp_path, repo_root):
    import sys

    sys.path.insert(0, str(repo_root / "workflow" / "scripts"))
    from _common import keep_previous_attempt

    log = tmp_path / "train.log"
    assert keep_previous_attempt(log) is None
    log.write_text("attempt 1: Traceback ...")
    assert keep_previous_attempt(log).name == "train.log.attempt1"
    log.write_text("attempt 2: SIGTERM")
    assert keep_previous_attempt(log).name == "train.log.attempt2"
    assert (tmp_path / "train.log.attempt1").read_text() == "attempt 1: Traceback ..."
