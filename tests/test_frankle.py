"""The Frankle et al. experiment: run grid, aggregation of hand-made runs, claim text, dry run."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest
import spp
import torch
from spp import frankle as FK
from spp.models import prunable_parameters


def _rows(deltas: dict[str, float], base=10.0, seeds=(0, 1, 2), noise=0.1):
    """Hand-made runs: snip's error is `base` (+/- noise over seeds) plus `deltas[ablation]`."""
    rows = []
    for s in (0.5, 0.9):
        for how, d in {"none": 0.0, **deltas}.items():
            for k in seeds:
                rows.append({"network": "Net", "method": "snip", "ablation": how, "sparsity": s,
                             "seed": k, "error": base + d + noise * (k - 1),
                             "error_paper_protocol": base, "final_error": base,
                             "collapsed": "l0.weight" if how == "invert" and s == 0.9 else ""})
    return pd.DataFrame(rows)


def test_aggregate_mean_std_n_and_collapses():
    table = FK.aggregate(_rows({"shuffle": 2.0, "invert": 30.0}))
    assert len(table) == 2 * 3
    row = table[(table.ablation == "shuffle") & (table.sparsity == 0.9)].iloc[0]
    assert row.error_mean == pytest.approx(12.0)
    assert row.error_std == pytest.approx(0.1)  # sample std of 11.9, 12.0, 12.1
    assert row.error_n == 3
    inv = table[table.ablation == "invert"].set_index("sparsity")["collapsed_runs"]
    assert inv[0.9] == 3 and inv[0.5] == 0
    # Rows by method, ablation in registry order, then sparsity.
    assert list(table.ablation[::2]) == ["none", "shuffle", "invert"]
    assert list(table.sparsity[:2]) == [0.5, 0.9]


def test_single_seed_has_nan_std_and_missing_columns_are_rejected():
    table = FK.aggregate(_rows({}, seeds=(0,)))
    assert table.error_n.eq(1).all() and table.error_std.isna().all()
    with pytest.raises(ValueError, match="lack columns"):
        FK.aggregate(pd.DataFrame([{"network": "n", "method": "snip"}]))


def test_claim_text_follows_the_measurements():
    worse = FK.claim_text(FK.aggregate(_rows({"shuffle": 5.0, "reinit": 0.2})))
    assert "NOT consistent" in worse and "snip/shuffle" in worse and "+5.0 pp (worse)" in worse
    same = FK.claim_text(FK.aggregate(_rows({"shuffle": 0.3, "reinit": -0.2})))
    assert "consistent with the claim" in same and "NOT" not in same
    assert "within noise" in same


def test_ablation_effects_average_over_shared_sparsities():
    eff = FK.ablation_effects(FK.aggregate(_rows({"shuffle": 2.0})))
    r = eff.iloc[0]
    assert (r.method, r.ablation, r.sparsities) == ("snip", "shuffle", 2)
    assert r.delta == pytest.approx(2.0)


def test_run_cells_grid_reinit_and_collapse_are_recorded():
    def make(seed):
        m = spp.build_model("mlp-3-relu", (1, 4, 4), 10)
        return spp.initialize(m, "vs-he", seed)

    seen = []

    def train_fn(model, mask, seed, tag):
        assert tag.endswith(f"_seed{seed}")
        # Record what would be trained: the masked starting weights of the first layer.
        w = prunable_parameters(model)["layers.0.weight"].detach().clone()
        seen.append((w, {k: v.clone() for k, v in mask.items()}))
        kept = sum(int(v.sum()) for v in mask.values())
        return {"error": 100.0 - kept / 10, "error_paper_protocol": 1.0, "final_error": 2.0}

    rows = FK.run_cells("magnitude", make, seed=3, sparsities=[0.5, 0.999], ablations=FK.ABLATIONS,
                        train_fn=train_fn, init_scheme="vs-he", log=lambda s: None)
    assert [(r["sparsity"], r["ablation"]) for r in rows] == [
        (s, a) for s in (0.5, 0.999) for a in ("none", "shuffle", "reinit", "invert")]
    init_w = prunable_parameters(make(3))["layers.0.weight"]
    none_w, none_mask = seen[0]
    reinit_w, reinit_mask = seen[2]
    assert torch.equal(none_w, init_w)
    assert all(torch.equal(none_mask[k], reinit_mask[k]) for k in none_mask)
    assert not torch.equal(reinit_w, init_w)
    fresh = make(3 + FK.REINIT_SEED_OFFSET)
    assert torch.equal(reinit_w, prunable_parameters(fresh)["layers.0.weight"])
    # 0.1% of ~1.9k weights: magnitude keeps 2 weights, so some layer is fully pruned.
    assert any(r["collapsed"] for r in rows if r["sparsity"] == 0.999)
    assert all(r["kept"] == rows[0]["kept"] for r in rows[:4])
    random_rows = FK.run_cells("random", make, seed=0, sparsities=[0.5], ablations=FK.ABLATIONS,
                               train_fn=train_fn, init_scheme="vs-he", log=lambda s: None)
    assert [r["ablation"] for r in random_rows] == ["none"]


def test_unknown_method_or_ablation_is_listed():
    with pytest.raises(ValueError, match="valid: snip, grasp, synflow"):
        FK.check_names(["snap"], [])
    with pytest.raises(ValueError, match="valid: none, shuffle, reinit, invert"):
        FK.check_names(["snip"], ["reverse"])
    with pytest.raises(ValueError, match="trained_state"):
        FK.run_cells("magnitude-after-training", lambda s: None, seed=0, sparsities=[0.5],
                     ablations=["none"], train_fn=None, init_scheme="vs-he")


def test_report_text_reads_the_file_when_rendered(tmp_path):
    t = FK.ReportText(str(tmp_path / "claim.txt"))
    assert "not built yet" in str(t)
    (tmp_path / "claim.txt").write_text("measured words\n")
    assert str(t) == "measured words" and "claim.txt" in repr(t)


def test_figure_has_one_panel_per_network():
    table = pd.concat([_rows({"shuffle": 1.0}).assign(network="A"),
                       _rows({"invert": 3.0}).assign(network="B")])
    fig = FK.figure(FK.aggregate(table))
    assert [ax.get_title() for ax in fig.axes] == ["A", "B"]
    dashed = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"]
    assert dashed and not math.isnan(dashed[0].get_ydata()[0])


def test_dry_run_plans_the_frankle_targets(repo_root):
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nolock", "--forcerun", "frankle_dense",
         "--", "results/quick/tables/frankle.csv", "results/quick/figures/frankle.png"],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout + out.stderr
    for rule in ("frankle_dense", "frankle_runs", "frankle_table", "frankle_figure"):
        assert f"rule {rule}:" in text, text
    # One job per network x method in the quick preset: all six methods are planned.
    for method in FK.METHODS:
        assert f"kaiming-normal/{method}/all.json" in text, method
