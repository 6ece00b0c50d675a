"""The Frankle et al. experiment: run grid, aggregation of hand-made runs, claim text, dry run."""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import pandas as pd
import pytest
import spp
import torch
from spp.frankle import claims as FC
from spp.frankle import runs as FK
from spp.nets.models import prunable_parameters
from spp.rule_params import ReportText


def _rows(deltas: dict[str, float], base=10.0, seeds=(0, 1, 2), noise=0.1):
    """Hand-made runs: snip's error is `base` (+/- noise over seeds) plus `deltas[ablation]`."""
    rows = []
    for s in (0.5, 0.9):
        for how, d in {"none": 0.0, **deltas}.items():
            for k in seeds:
                rows.append({"network": "Net", "method": "snip", "ablation": how, "sparsity": s,
                             "seed": k, "error": base,
                             "error_paper_protocol": base,
                             "final_error": base + d + noise * (k - 1),
                             "collapsed": "l0.weight" if how == "invert" and s == 0.9 else ""})
    return pd.DataFrame(rows)


def test_aggregate_mean_std_n_and_collapses():
    table = FK.aggregate(_rows({"shuffle": 2.0, "invert": 30.0}))
    assert len(table) == 2 * 3
    row = table[(table.ablation == "shuffle") & (table.sparsity == 0.9)].iloc[0]
    assert row.final_error_mean == pytest.approx(12.0)
    assert row.final_error_std == pytest.approx(0.1)  # sample std of 11.9, 12.0, 12.1
    assert row.final_error_n == 3
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


def _table(errors: dict, std=0.1) -> pd.DataFrame:
    """An aggregated table from {(method, ablation): [error at each sparsity]}."""
    rows = []
    for (method, how), errs in errors.items():
        for s, e in zip((0.5, 0.9, 0.98), errs, strict=True):
            rows.append({"network": "Net", "method": method, "ablation": how, "sparsity": s,
                         "final_error_mean": e, "final_error_std": std, "final_error_n": 2})
    return pd.DataFrame(rows)


# The paper's picture: at-init methods beat random at high sparsity, lose to magnitude after
# training; their shuffles / reinits change nothing; inversion and after-training ablations hurt.
PAPER = {("random", "none"): [3.0, 5.0, 20.0],
         ("magnitude-after-training", "none"): [1.5, 1.6, 2.0],
         ("magnitude-after-training", "shuffle"): [2.5, 4.0, 9.0],
         ("magnitude-after-training", "reinit"): [2.4, 3.5, 8.0]}
for _m in FK.AT_INIT:
    PAPER |= {(_m, "none"): [2.0, 2.5, 4.0], (_m, "shuffle"): [2.0, 2.4, 4.1],
              (_m, "reinit"): [2.1, 2.5, 3.9], (_m, "invert"): [5.0, 30.0, 80.0]}


def test_the_five_claims_hold_on_the_papers_picture():
    claims = FC.check(_table(PAPER), tolerance_pp=0.2)
    assert list(claims.claim) == [1, 2, 3, 4, 5]
    assert (claims.verdict == FC.HOLDS).all(), claims.to_string()
    # the numbers are in the evidence: snip's invert is +27 pp on average (25.5 = 85.5 / 3 ...)
    inv = claims[claims.claim == 4].evidence.iloc[0]
    assert "snip: +" in inv and "grasp" in inv and "reported only" in inv


@pytest.mark.parametrize("change, claim", [
    ({("snip", "none"): [2.0, 2.5, 21.0]}, 1),  # snip no better than random at 98%
    ({("magnitude-after-training", "none"): [2.0, 2.5, 4.0]}, 2),  # ties the at-init methods
    ({("synflow", "shuffle"): [2.0, 4.0, 8.0]}, 3),  # shuffling hurts synflow
    ({("snip", "invert"): [2.0, 2.5, 4.0]}, 4),  # inverting snip changes nothing
    ({("magnitude-after-training", "reinit"): [1.5, 1.6, 2.0]}, 5),  # reinit harmless after
])
def test_each_claim_fails_when_its_measurement_contradicts_it(change, claim):
    claims = FC.check(_table({**PAPER, **change}), tolerance_pp=0.2).set_index("claim")
    assert claims.loc[claim, "verdict"] == FC.FAILS
    assert (claims.drop(claim).verdict == FC.HOLDS).all()


def test_noise_bar_is_twice_the_seed_std():
    # shuffling raises snip's error by 0.5 pp: beyond the bar at std 0.1, within it at std 0.5
    change = {("snip", "shuffle"): [2.5, 3.0, 4.5]}
    assert FC.check(_table({**PAPER, **change}, std=0.1)).set_index("claim").loc[3].verdict \
        == FC.FAILS
    assert FC.check(_table({**PAPER, **change}, std=0.5)).set_index("claim").loc[3].verdict \
        == FC.HOLDS


def test_a_claim_without_its_curves_is_not_measured():
    only = {k: v for k, v in PAPER.items() if k[0] != "magnitude-after-training"}
    claims = FC.check(_table(only)).set_index("claim")
    assert claims.loc[2, "verdict"] == claims.loc[5, "verdict"] == FC.NOT_MEASURED


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
    t = ReportText(str(tmp_path / "claim.txt"))
    assert "not built yet" in str(t)
    (tmp_path / "claim.txt").write_text("measured words\n")
    assert str(t) == "measured words" and "claim.txt" in repr(t)


def test_figure_has_a_panel_per_network_and_method():
    table = pd.concat([_rows({"shuffle": 1.0}).assign(network="A"),
                       _rows({"invert": 3.0}).assign(network="B")])
    fig = FK.figure(FK.aggregate(table))
    assert [ax.get_title() for ax in fig.axes] == ["A: snip", "B: snip"]
    dashed = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"]
    assert dashed and not math.isnan(dashed[0].get_ydata()[0])
    # x is the percent of weights remaining: sparsity 0.9 -> 10%
    assert sorted(dashed[0].get_xdata()) == pytest.approx([10.0, 50.0])


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


def test_magnitude_after_training_scores_the_trained_net_and_restarts_from_the_rewind_point():
    def make(seed):
        return spp.initialize(spp.build_model("mlp-3-relu", (1, 4, 4), 10), "vs-he", seed)

    trained = {k: v * torch.linspace(0, 2, v.numel()).reshape(v.shape)
               for k, v in make(1).state_dict().items()}
    rewind = make(2).state_dict()
    seen = []

    def train_fn(model, mask, seed, tag):
        seen.append((copy.deepcopy(model.state_dict()), mask))
        return {"error": 1.0, "error_paper_protocol": 1.0, "final_error": 1.0}

    FK.run_cells("magnitude-after-training", make, seed=0, sparsities=[0.5],
                 ablations=["none"], train_fn=train_fn, init_scheme="vs-he",
                 trained_state=trained, rewind_state=rewind, log=lambda s: None)
    start, mask = seen[0]
    # the weights trained are the rewound ones, the kept ones the largest trained magnitudes
    assert all(torch.equal(start[k], rewind[k]) for k in rewind)
    w, m = trained["layers.0.weight"].abs(), mask["layers.0.weight"].bool()
    assert w[m].min() >= w[~m].max() or not (~m).any()
    with pytest.raises(ValueError, match="rewind_state"):
        FK.run_cells("magnitude-after-training", make, seed=0, sparsities=[0.5],
                     ablations=["none"], train_fn=train_fn, init_scheme="vs-he",
                     trained_state=trained)
