"""Frankle et al.'s protocol as OpenLTH defines it: networks, init, schedule, data, scoring set."""

from __future__ import annotations

import math

import pytest
import torch
from spp.frankle import runs as frankle
from spp.nets.initializers import initialize
from spp.nets.models import arch_family, build_model, prunable_parameters
from spp.train.training import TrainConfig, augment_batch
from torch import nn


@pytest.mark.parametrize("arch, shape, classes, params, weights", [
    # OpenLTH's counts: cifar_resnet_20 272,474 (270,896 prunable conv/linear weights),
    # cifar_vgg_16 14,728,266, mnist_lenet_300_100 266,610 (266,200 weights).
    ("cifar-resnet-20", (3, 32, 32), 10, 272_474, 270_896),
    ("cifar-vgg-16", (3, 32, 32), 10, 14_728_266, 14_728_266 - 3 * 4224 - 10),
    ("mnist-lenet-300-100", (1, 28, 28), 10, 266_610, 266_200),
    # torchvision's resnet18 (11,689,512) with a 200-way instead of 1000-way output; its
    # 4,800 batch-norm channels and the output bias are not pruned
    ("tiny-resnet-18", (3, 64, 64), 200, 11_689_512 - 800 * 513,
     11_689_512 - 800 * 513 - 200 - 2 * 4800),
])
def test_parameter_counts_and_forward(arch, shape, classes, params, weights):
    model = build_model(arch, shape, classes)
    assert sum(p.numel() for p in model.parameters()) == params
    assert sum(p.numel() for p in prunable_parameters(model, biases=False).values()) == weights
    assert model(torch.zeros(2, *shape)).shape == (2, classes)


def test_cifar_resnet_has_projection_shortcuts_where_the_shape_changes():
    model = build_model("cifar-resnet-20", (3, 32, 32), 10)
    shortcuts = [b.shortcut for b in model.blocks]
    projections = [s for s in shortcuts if len(s)]
    assert len(projections) == 2  # entering segments 2 and 3
    for s in projections:
        conv, bn = s
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None
        assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-5 and bn.momentum == 0.1
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)][:1] == [16]


def test_cifar_vgg16_plan_pools_and_head():
    model = build_model("cifar-vgg-16", (3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    assert model.fc.in_features == 512 and model.fc.out_features == 10
    with pytest.raises(ValueError, match="32x32"):
        build_model("cifar-vgg-16", (3, 64, 64), 200)


def test_names_are_validated_like_the_others():
    assert arch_family("cifar-resnet-56") == "cifar-resnet-N"
    assert arch_family("mnist-lenet-300-100") == "mnist-lenet-N1-N2"
    with pytest.raises(ValueError, match="cifar-resnet-N"):
        arch_family("cifar-resnet-21")
    with pytest.raises(ValueError, match="ReLU and width 1"):
        build_model("cifar-resnet-20", (3, 32, 32), 10, width=2.0)


def test_kaiming_normal_init_is_openlths():
    torch.manual_seed(0)
    model = initialize(build_model("cifar-vgg-16", (3, 32, 32), 10), "kaiming-normal", seed=3)
    conv = model.layers[10]  # the second 128 -> 128 3x3 conv: fan_in 1152
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 1152), rel=0.02)
    bound = 1 / math.sqrt(1152)  # PyTorch's default bias init U(+-1/sqrt(fan_in))
    assert conv.bias.abs().max().item() <= bound and conv.bias.abs().max().item() > 0.9 * bound
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([b.weight for b in bns])
    assert 0 <= scales.min() and scales.max() < 1 and abs(scales.mean().item() - 0.5) < 0.05
    assert all((b.bias == 0).all() for b in bns)
    again = initialize(build_model("cifar-vgg-16", (3, 32, 32), 10), "kaiming-normal", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values(), strict=True))


def test_epoch_recipe_milestones_and_warmup():
    # ResNet-20 on CIFAR-10's 50k images at batch 128: 390 steps an epoch
    cfg = TrainConfig.from_recipe({"epochs": 160, "milestone_epochs": [80, 120], "batch_size": 128,
                                   "eval_every_epochs": 1}, n_train=50_000)
    assert (cfg.iterations, cfg.milestones, cfg.eval_every) == (62_400, (31_200, 46_800), 390)
    lrs = [cfg.lr_at(i) for i in (0, 31_199, 31_200, 46_799, 46_800, 62_399)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    warm = TrainConfig.from_recipe({"epochs": 10, "warmup_epochs": 2, "batch_size": 100,
                                    "lr": 0.2, "milestone_epochs": [5]}, n_train=1000)
    assert warm.warmup == 20
    assert [warm.lr_at(i) for i in (0, 10, 20, 49, 50)] == pytest.approx([0, 0.1, 0.2, 0.2, 0.02])


def test_recipe_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="milestones must be increasing"):
        TrainConfig(iterations=10, batch_size=1, milestones=(5, 3))
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(iterations=10, batch_size=1, milestones=(5,), lr_decay_every=3)
    with pytest.raises(ValueError, match="both epochs and iterations"):
        TrainConfig.from_recipe({"epochs": 1, "iterations": 5, "batch_size": 10}, n_train=100)


def _splits():
    from spp.data.datasets import DataSplits

    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    x = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1)
    return DataSplits("toy", 3, (1, 1, 1), torch.zeros(1), torch.ones(1),
                      {"train": x, "val": x[:3] + 100, "test": x},
                      {"train": y, "val": y[:3], "test": y})


def test_training_split_all_adds_the_validation_images():
    data, cfg = frankle.training_setup(_splits(), {"epochs": 2, "batch_size": 13, "lr": 0.1,
                                                   "momentum": 0.0, "weight_decay": 0.0}, seed=4)
    assert len(data.y["train"]) == 13 and cfg.iterations == 2 and cfg.seed == 4
    assert torch.equal(data.x["val"], _splits().x["val"])
    kept, _ = frankle.training_setup(_splits(), {"epochs": 1, "batch_size": 5, "lr": 0.1,
                                                 "momentum": 0.0, "weight_decay": 0.0,
                                                 "train_split": "train"}, seed=0)
    assert len(kept.y["train"]) == 10
    with pytest.raises(ValueError, match="train_split must be one of all, train"):
        frankle.training_setup(_splits(), {"epochs": 1, "batch_size": 5, "train_split": "val"}, 0)


def test_scoring_set_is_the_first_images_of_each_class():
    make = frankle.scoring_batches(_splits(), batch_size=4, examples_per_class=2)
    xs, ys = zip(*make(), strict=True)
    assert [len(x) for x in xs] == [4, 2]  # a fresh iterator, in batches of 4
    assert torch.cat(ys).tolist() == [0, 1, 0, 2, 1, 2]  # images 0, 1, 2, 3, 4, 6
    assert (torch.cat(xs).flatten() * 255).round().tolist() == [0, 1, 2, 3, 4, 6]
    assert sum(len(x) for x, _ in make()) == 6


def test_flip_crop_flips_half_and_shifts_every_image():
    gen = torch.Generator().manual_seed(0)
    n = 4000
    x = torch.zeros(n, 1, 11, 11)
    x[:, :, 5, 2] = 1.0  # one bright pixel: column 2, or 8 when flipped, then shifted by +-2
    out = augment_batch(x, gen, max_shift=2, kind="flip-crop")
    assert (out.flatten(1).max(1).values == 1).all()  # never shifted out of the image
    where = out.flatten(1).argmax(1)
    row, col = where // 11, where % 11
    flipped = col >= 6
    assert abs(flipped.float().mean().item() - 0.5) < 0.03
    assert ((row - 5).abs() <= 2).all()
    unmoved = (row == 5) & ((col == 2) | (col == 8))
    assert abs(unmoved.float().mean().item() - 1 / 25) < 0.01  # 25 equally likely shifts


def test_paper_preset_plans_frankle_at_their_protocol_offline(repo_root):
    """`snakemake -n --configfile config/paper.yaml` plans every Frankle et al. run on OpenLTH's
    networks: 3 networks x (5 ablated methods x 4 + random) x 12 sparsities x 3 seeds."""
    import subprocess
    import sys

    import yaml

    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nolock", "--configfile", "config/paper.yaml",
         "--", "results/paper/tables/frankle_claims.csv"],
        cwd=repo_root, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    cfg = yaml.safe_load((repo_root / "config" / "paper.yaml").read_text())["frankle"]
    assert [n["arch"] for n in cfg["networks"]] == ["cifar-resnet-20", "cifar-vgg-16",
                                                    "tiny-resnet-18"]
    jobs = {line.split()[0]: int(line.split()[1]) for line in text.splitlines()
            if line.startswith("frankle_") and len(line.split()) == 2}
    assert jobs["frankle_runs"] == 3 * 6 * 12 * 3 and jobs["frankle_dense"] == 3 * 3
    for arch in ("cifar-resnet-20", "cifar-vgg-16", "tiny-resnet-18"):
        assert "frankle/runs/" in text and f"/{arch}_default_w1/kaiming-normal/" in text
    # the recipes are OpenLTH's, in epochs
    r20 = cfg["networks"][0]["training"]
    assert (r20["epochs"], r20["milestone_epochs"], r20["weight_decay"]) == (160, [80, 120], 1e-4)
    assert [1 - s for s in cfg["sparsities"]] == pytest.approx([0.8 ** k for k in range(2, 25, 2)])
