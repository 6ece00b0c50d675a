"""The Figure 1/2 experiments measure what the paper says they measure (Section 3.1 and 4)."""

from __future__ import annotations

import math

import pytest
import torch
from spp.data.datasets import DataSplits
from spp.tables.figure_experiments import (
    Method,
    parse_method,
    signal_rows,
    sparsity_patterns,
    training_rows,
)


def _data(n: int = 200) -> DataSplits:
    # 10x10 images: the first MLP layer is square (100 -> 100), so an orthogonal linear MLP has
    # an input-output Jacobian with orthonormal rows: every singular value exactly 1.
    gen = torch.Generator().manual_seed(0)

    def split(k):
        return torch.randint(0, 256, (k, 1, 10, 10), generator=gen, dtype=torch.uint8)

    x = {"train": split(n), "val": split(50), "test": split(50)}
    y = {s: torch.randint(0, 10, (len(v),), generator=gen) for s, v in x.items()}
    return DataSplits("synthetic", 10, (1, 10, 10), torch.tensor([0.5]), torch.tensor([0.25]), x, y)


def test_method_names_follow_the_paper():
    assert parse_method("LDI-CS-AI") == Method("orthogonal", "snip", True, "LDI-CS-AI")
    assert parse_method("VS-Rand", vs_scheme="vs-glorot") == Method(
        "vs-glorot", "random", False, "VS-Rand"
    )
    assert parse_method("LDI-Dense").prune == "dense"
    with pytest.raises(ValueError, match="allowed"):
        parse_method("LDI-SNIP")


def test_sparsity_patterns_keep_exactly_the_global_fraction():
    res = sparsity_patterns(_data(), "tanh", [0.1, 0.5, 0.9], gamma=1.0, examples=100)
    sizes = [a.size for a in res["sensitivity"]]
    assert [m.shape for m in res["masks"][0.5]] == [a.shape for a in res["sensitivity"]]
    assert all(m.ndim == 2 for m in res["masks"][0.5])  # weight layers only: drawn as images
    biases = 6 * 100 + 10  # pruned with the weights (zero score), so the keep count is over both
    for s, masks in res["masks"].items():
        kept = sum(int(m.sum()) for m in masks)
        assert kept == round((sum(sizes) + biases) * (1 - s))
        # The mask keeps the highest sensitivities: every kept score >= every pruned score.
        kept_min = min(
            a[m].min() for a, m in zip(res["sensitivity"], masks, strict=True) if m.any()
        )
        pruned_max = max(a[~m].max() for a, m in zip(res["sensitivity"], masks, strict=True)
                         if (~m).any())  # fmt: skip
        assert kept_min >= pruned_max


def test_orthogonal_linear_mlp_is_exactly_isometric_before_pruning():
    rows = signal_rows(_data(), "linear", [parse_method("LDI-CS")], [0.0], [0],
                       isometry_steps=0, scoring_examples=100, jacobian_examples=20)  # fmt: skip
    (row,) = rows
    assert row["mean"] == pytest.approx(1.0, abs=1e-4)
    assert row["std"] == pytest.approx(0.0, abs=1e-4)
    assert row["orthogonality"] == pytest.approx(0.0, abs=1e-3)


def test_pruning_breaks_isometry_and_approximate_isometry_repairs_it():
    methods = [parse_method("LDI-Rand"), parse_method("LDI-Rand-AI")]
    rows = signal_rows(_data(), "linear", methods, [0.5], [0], isometry_steps=300,
                       jacobian_examples=20)  # fmt: skip
    plain, ai = (next(r for r in rows if r["method"] == m.label) for m in methods)
    assert plain["mean"] < 0.9  # random pruning at 50% breaks dynamical isometry ...
    assert abs(ai["mean"] - 1) < abs(plain["mean"] - 1)  # ... AI brings it back towards 1
    assert ai["orthogonality"] < plain["orthogonality"]


def test_a_diverged_training_run_is_kept_as_a_marker_row():
    cfg = {"iterations": 30, "batch_size": 50, "lr": 50.0, "eval_every": 10}
    rows = training_rows(_data(), "linear", [parse_method("LDI-Dense")], 0.9, [0], cfg,
                         isometry_steps=0)  # fmt: skip
    assert rows and rows[-1]["diverged"] is True and math.isnan(rows[-1]["train_loss"])
    assert rows[-1]["sparsity"] == 0.0
