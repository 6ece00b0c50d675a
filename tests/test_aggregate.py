"""Aggregation of per-seed metric files into the paper's tables (spp.tables.aggregate), on hand-made
files whose mean and standard deviation are known, and the transcription of the paper's numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate as schema_validate
from spp.tables import aggregate as A
from spp.tables import experiments as X

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper_results.csv"


def write_seed(root: Path, seed: int, error: float, paper_error: float, jsv=None, os_=None,
               sparsity=None) -> dict:
    sig, train = root / "signal", root / "train"
    if jsv is not None:
        sig.mkdir(parents=True, exist_ok=True)
        record = {"jacobian": {"mean": jsv, "std": jsv / 2, "max": 2 * jsv, "min": jsv / 4,
                               "condition_number": 8.0},
                  "orthogonality_score": os_, "layer_sparsity": sparsity or {}}
        (sig / f"seed{seed}.json").write_text(json.dumps(record))
    (train / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    (train / f"seed{seed}" / "metrics.json").write_text(json.dumps(
        {"error": error, "error_paper_protocol": paper_error, "final_error": error + 1,
         "diverged": False}))
    return {"signal": str(sig) if jsv is not None else None, "train": str(train)}


def test_stats_sample_std_and_missing_values():
    mean, std, n = A.stats([1.0, 2.0, 3.0, 6.0])
    assert (mean, n) == (3.0, 4)
    assert std == pytest.approx(math.sqrt(((2**2) + 1 + 0 + 9) / 3))  # ddof = 1
    assert A.stats([5.0]) == (5.0, pytest.approx(math.nan, nan_ok=True), 1)
    mean, std, n = A.stats([1.0, math.nan, 3.0])
    assert (mean, std, n) == (2.0, pytest.approx(math.sqrt(2)), 2)
    mean, std, n = A.stats([math.inf, 1.0])  # a disconnected network's condition number
    assert mean == math.inf and math.isnan(std) and n == 2
    assert A.stats([])[2] == 0


def test_table2_row_from_hand_made_files(tmp_path):
    errs, perrs, oss = [10.0, 12.0, 14.0], [9.0, 11.0, 10.0], [2.0, 3.0, 4.0]
    run = None
    for s in range(3):
        run = write_seed(tmp_path, s, errs[s], perrs[s], jsv=1.0, os_=oss[s])
    run["seeds"] = [0, 1, 2]
    rows = [{"keys": {"init": "LDI-AI", "network": "ResNet110", "dataset": "cifar10"},
             "paper_key": ["LDI-AI", "ResNet110"], "runs": {"main": run}}]
    df = A.build_table("table2", rows, A.load_paper(PAPER), preset="test")
    r = df.iloc[0]
    assert r["preset"] == "test" and r["network"] == "ResNet110"
    assert r["os_mean"] == 3.0 and r["os_std"] == pytest.approx(1.0) and r["os_n"] == 3
    assert r["error_mean"] == 12.0 and r["error_std"] == pytest.approx(2.0)
    assert r["error_paper_protocol_mean"] == 10.0
    assert r["error_paper_protocol_std"] == pytest.approx(1.0)
    assert r["paper_error_paper_protocol"] == 8.78 and r["paper_os"] == 2.92  # Table 2
    assert math.isnan(r["paper_error"])  # the honest error has no published counterpart
    cols = list(df.columns)  # the paper's value sits right after ours
    assert cols.index("paper_os") == cols.index("os_n") + 1


def test_table1_takes_the_jacobian_of_the_dense_init(tmp_path):
    pruned = write_seed(tmp_path / "pruned", 0, 5.0, 4.0, jsv=0.001, os_=1.0,
                        sparsity={"a": 0.97, "b": 0.5})
    dense = write_seed(tmp_path / "dense", 0, 0.0, 0.0, jsv=0.45, os_=0.0)
    pruned["seeds"] = dense["seeds"] = [0]
    dense["train"] = None
    rows = [{"keys": {"init": "SG (gamma=1e-02)", "gamma": 0.01},
             "paper_key": ["SG (gamma=1e-02)", ""], "runs": {"main": pruned, "init": dense}}]
    df = A.build_table("table1", rows, A.load_paper(PAPER))
    r = df.iloc[0]
    assert r["jsv_mean_mean"] == 0.45 and r["paper_jsv_mean"] == pytest.approx(0.449)
    assert r["sparsity_l1_mean"] == 0.97 and r["sparsity_l2_mean"] == 0.5
    assert r["paper_sparsity_l7"] == 0.49 and r["paper_error_paper_protocol"] == 2.67


def test_table5_delta_is_per_seed_unsupervised_minus_supervised(tmp_path):
    runs = {}
    values = {"sup": [2.0, 3.0], "unsup": [2.5, 4.5], "rand": [15.0, 16.0]}
    for role, vals in values.items():
        for s, v in enumerate(vals):
            runs[role] = write_seed(tmp_path / role, s, v + 0.1, v)
        runs[role]["seeds"] = [0, 1]
    rows = [{"keys": {"category": "Standard", "prune": "mnist", "train": "mnist"},
             "paper_key": ["MNIST -> MNIST", ""], "runs": runs}]
    r = A.build_table("table5", rows, A.load_paper(PAPER)).iloc[0]
    assert r["delta_mean"] == pytest.approx(1.0)  # (0.5 + 1.5) / 2
    assert r["delta_std"] == pytest.approx(math.sqrt(0.5))
    assert r["error_paper_protocol_rand_mean"] == 15.5
    assert r["paper_delta"] == 0.52 and r["paper_error_paper_protocol_rand"] == 15.56


def test_missing_runs_are_not_run_not_zero(tmp_path):
    """A run still in progress (strict=False): its cells are "not run", never zero."""
    run = {"signal": None, "train": str(tmp_path / "nothing"), "seeds": [0, 1]}
    rows = [{"keys": {"loss": "GT", "K": 3}, "paper_key": ["GT", "K=3"], "runs": {"main": run}}]
    df = A.build_table("table4", rows, A.load_paper(PAPER),
                       reader=lambda r: A.read_run(r, strict=False))
    assert df.iloc[0]["error_paper_protocol_n"] == 0
    assert math.isnan(df.iloc[0]["error_paper_protocol_mean"])
    md = A.to_markdown(df, "T4", "quick preset")
    assert "not run" in md and "_quick preset_" in md and "2.46" in md


def test_renderings_and_atomic_files(tmp_path):
    run = write_seed(tmp_path, 0, 3.0, 2.5)
    run["seeds"] = [0]
    rows = [{"keys": {"loss": "Unif.", "K": 7}, "paper_key": ["Unif.", "K=7"],
             "runs": {"main": run}}]
    df = A.build_table("table4", rows, A.load_paper(PAPER), preset="quick")
    out = tmp_path / "tables"
    A.write_table(df, out / "t.csv", out / "t.md", out / "t.html", title="Table 4",
                  note="Quick preset: not a reproduction")
    back = pd.read_csv(out / "t.csv")
    assert back.loc[0, "error_paper_protocol_mean"] == 2.5
    assert back.loc[0, "paper_error_paper_protocol"] == 2.94
    html = (out / "t.html").read_text()
    assert "<table class='spp'>" in html and "2.94" in html
    assert "Quick preset: not a reproduction" in html
    assert not list(out.glob("*.tmp"))


def _paper_value(df, table, row, col, q):
    sel = df[(df.table == table) & (df.row == row) & (df.col == col) & (df.quantity == q)]
    assert len(sel) == 1, (table, row, col, q)
    return float(sel.value.iloc[0])


def test_paper_numbers_transcribed():
    df = A.load_paper(PAPER)
    assert not df.duplicated(["table", "row", "col", "quantity"]).any()
    # spot checks against the paper's tables and text
    assert _paper_value(df, "table1", "SG (gamma=1e+00)", "", "jsv_cn") == 3.34e11
    assert _paper_value(df, "table1", "SG (gamma=1e+01)", "", "jsv_cn") == math.inf
    assert _paper_value(df, "table1", "SG (gamma=1e-04)", "", "sparsity_l7") == 0.48
    assert _paper_value(df, "table2", "VS-H", "VGG16", "os") == 15.44
    assert _paper_value(df, "table2", "LDI-AI", "WRN16", "error_paper_protocol") == 44.12
    assert _paper_value(df, "table2", "LDI (unsup.)", "ResNet56", "error_paper_protocol") == 11.01
    assert _paper_value(df, "table3", "VS-H", "ResNet32 tanh", "error_paper_protocol") == 13.12
    assert _paper_value(df, "table3", "LDI-AI", "VGG16 selu", "error_paper_protocol") == 8.20
    assert _paper_value(df, "table4", "Pred. (softmax)", "K=5", "error_paper_protocol") == 3.37
    assert _paper_value(df, "table4", "||J||_1", "K=7", "error_paper_protocol") == 5.03
    assert _paper_value(df, "table5", "MNIST -> F-MNIST", "", "delta") == -0.78
    assert _paper_value(df, "figure3", "Equivalent 1 (wider)", "", "sparsity") == 0.984
    # Table 5's deltas are the differences of its columns, as printed
    for row in df[df.table == "table5"].row.unique():
        sup = _paper_value(df, "table5", row, "", "error_paper_protocol_sup")
        uns = _paper_value(df, "table5", row, "", "error_paper_protocol_unsup")
        assert _paper_value(df, "table5", row, "", "delta") == pytest.approx(uns - sup)


def test_every_paper_cell_is_produced_by_the_paper_preset():
    """Every published number has a row of the paper preset's tables to sit beside."""
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    schema_validate(cfg, str(REPO / "config" / "config.schema.yaml"))
    tables = X.expand(cfg)
    keys = {(name, *row["paper_key"]) for name, rows in tables.items() for row in rows}
    paper = A.load_paper(PAPER)
    missing = {(t, r, c) for t, r, c in zip(paper.table, paper.row, paper.col, strict=True)
               if (t, r, c) not in keys}
    assert not missing


def test_diverged_seeds_are_counted_shown_and_get_their_own_verdict(tmp_path):
    """Issue: 2 of 4 seeds diverged and the table said `62.00 +- 2.26 (n=2)`, no word of it."""
    from spp.tables import summary as S

    run = None
    for s, (err, div) in enumerate([(60.4, False), (63.6, False), (None, True), (None, True)]):
        run = write_seed(tmp_path, s, 0.0, 0.0)
        (tmp_path / "train" / f"seed{s}" / "metrics.json").write_text(json.dumps(
            {"error": err, "error_paper_protocol": err, "final_error": err, "diverged": div}))
    run["seeds"] = [0, 1, 2, 3]
    rows = [{"keys": {"loss": "GT", "supervised": True, "K": 7},
             "paper_key": ["GT", "K=7"], "runs": {"main": run}}]
    df = A.build_table("table4", rows, A.load_paper(PAPER), preset="test")
    assert df.iloc[0]["diverged_n"] == 2 and df.iloc[0]["error_paper_protocol_n"] == 2
    assert "(n=2; 2 diverged)" in A.to_markdown(df)
    summary = S.summarize({"table4": df}, {"error*": {"abs": 0.5}}, comparable=True)
    assert set(summary["verdict"]) == {S.DIVERGED}
    assert "2 diverged" in S.summary_html(summary, "test", True, "rule")


@pytest.mark.parametrize("content,match", [
    ("{}", "'diverged' must be true or false"),
    ("[1, 2]", "expected a JSON object"),
    ('{"error": 999, "error_paper_protocol": 1, "final_error": 1, "diverged": false}',
     r"'error' must be a test error in \[0, 100\], got 999"),
    ("{not json", "not valid JSON"),
    (None, "is missing: seed 1 of this cell was expected"),
])
def test_a_damaged_or_missing_seed_file_is_named_with_the_fix(tmp_path, content, match):
    """Issue: {}, [1, 2] or a missing file lowered n silently; {"error": 999} was averaged."""
    run = None
    for s in (0, 1):
        run = write_seed(tmp_path, s, 3.0, 2.5)
    bad = tmp_path / "train" / "seed1" / "metrics.json"
    if content is None:
        bad.unlink()
    else:
        bad.write_text(content)
    run["seeds"] = [0, 1]
    rows = [{"keys": {"loss": "GT", "K": 3}, "paper_key": ["GT", "K=3"], "runs": {"main": run}}]
    with pytest.raises(ValueError, match=match) as err:
        A.build_table("table4", rows, A.load_paper(PAPER))
    message = str(err.value)
    assert str(bad) in message and f"delete the folder {tmp_path / 'train'}" in message
