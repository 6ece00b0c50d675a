"""A small learnable image dataset for engine tests: each class a fixed random template plus
noise, as uint8 DataSplits (train / val / test)."""

from __future__ import annotations

import torch
from spp.data.datasets import DataSplits


def toy_data(n_train=64, n_eval=32, shape=(3, 8, 8)) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    templates = torch.rand(10, *shape, generator=g)

    def split(n):
        y = torch.randint(0, 10, (n,), generator=g)
        return (templates[y] * 200 + torch.rand(n, *shape, generator=g) * 55).to(torch.uint8), y

    xs, ys = zip(*(split(n) for n in (n_train, n_eval, n_eval)), strict=True)
    names = ("train", "val", "test")
    return DataSplits("toy", 10, shape, torch.full((shape[0],), 0.4),
                      torch.full((shape[0],), 0.3), dict(zip(names, xs, strict=True)),
                      dict(zip(names, ys, strict=True)))
