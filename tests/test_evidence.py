"""docs/reproduction pages are generated from the workflow's CSVs, with the report's verdicts."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from spp.tables import evidence
from spp.tables import summary as S


def _table(tmp_path):
    df = pd.DataFrame({
        "preset": ["mnist", "mnist"], "init": ["SG (gamma=1e-04)", "SG (gamma=1e+00)"],
        "gamma": [1e-4, 1.0],
        "error_paper_protocol_mean": [2.7, 85.0], "error_paper_protocol_std": [0.1, 1.0],
        "error_paper_protocol_n": [3, 3], "paper_error_paper_protocol": [2.66, 90.2],
        "error_mean": [2.9, 86.0], "error_std": [0.1, 1.0], "error_n": [3, 3],
        "error_paper_protocol_reinit_mean": [math.nan, math.nan],
        "error_paper_protocol_reinit_std": [math.nan, math.nan],
        "error_paper_protocol_reinit_n": [0, 0],
        "paper_error_paper_protocol_reinit": [2.66, 90.2],
    })
    (tmp_path / "results" / "tables").mkdir(parents=True)
    df.to_csv(tmp_path / "results" / "tables" / "table1.csv", index=False)
    return df


def test_pages_carry_the_reports_verdicts_and_provenance(tmp_path, repo_root):
    df = _table(tmp_path)
    out = tmp_path / "docs"
    summary = evidence.write_evidence(tmp_path / "results", out, ["table1"], command="snakemake x",
                                      wall={"table1": "5 min"}, repo=repo_root, seeds="3")
    expected = S.summarize({"table1": df}, evidence.default_tolerances(), comparable=True)
    assert list(summary["verdict"]) == list(expected["verdict"])
    assert list(summary["verdict"]) == [S.REPRODUCED, S.NOT_REPRODUCED, S.NOT_RUN, S.NOT_RUN]
    page = (out / "table1.md").read_text()
    assert "`snakemake x`" in page and "5 min" in page and "git " in page
    assert "reproduced 1, not reproduced 1, not run 2" in page
    assert "| SG (gamma=1e+00) | error % | 85.00 ± 1.00 (n=3) | 90.20 | -5.20 | **no** |" in page
    copied = pd.read_csv(out / "table1.csv")
    assert copied.equals(pd.read_csv(tmp_path / "results" / "tables" / "table1.csv"))


def test_a_table_not_built_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="table4"):
        evidence.write_evidence(tmp_path, tmp_path / "out", ["table4"], command="c", wall={},
                                repo=tmp_path)


def test_figure_pages_copy_the_images_and_their_data(tmp_path, repo_root):
    figs = tmp_path / "results" / "figures"
    (figs / "data").mkdir(parents=True)
    for name in ("figure2a.png", "figure2b.png"):
        (figs / name).write_bytes(b"\x89PNG fake")
    (figs / "data" / "figure2a_tanh.csv").write_text("method,sparsity\nLDI-CS,0.9\n")
    out = tmp_path / "docs"
    evidence.write_figures(tmp_path / "results", out, ["figure2"], command="snakemake y",
                           wall={"figure2": "20 min"}, repo=repo_root, seeds="1 (0)")
    page = (out / "figure2.md").read_text()
    assert "![figure2a.png](figure2a.png)" in page and "20 min" in page
    assert "[figure2a_tanh.csv](figure2a_tanh.csv)" in page
    assert (out / "figure2b.png").read_bytes() == b"\x89PNG fake"
    with pytest.raises(FileNotFoundError, match="figure1"):
        evidence.write_figures(tmp_path / "results", out, ["figure1"], command="c", wall={},
                               repo=repo_root)


def test_frankle_page_shows_each_claim_and_every_curve_point(tmp_path):
    import pandas as pd
    from spp.frankle import claims as FC
    from spp.tables import evidence

    res = tmp_path / "results"
    (res / "tables").mkdir(parents=True)
    (res / "figures").mkdir()
    rows = [{"network": "Net", "method": m, "ablation": a, "sparsity": s,
             "final_error_mean": e, "final_error_std": 0.1, "final_error_n": 2}
            for m, a, s, e in [("dense", "none", 0.0, 1.5), ("snip", "none", 0.9, 2.0),
                               ("snip", "shuffle", 0.9, 2.05), ("random", "none", 0.9, 3.0)]]
    table = pd.DataFrame(rows)
    table.to_csv(res / "tables" / "frankle.csv", index=False)
    table.to_csv(res / "tables" / "frankle_runs.csv", index=False)
    FC.check(table).to_csv(res / "tables" / "frankle_claims.csv", index=False)
    (res / "figures" / "frankle.png").write_bytes(b"png")
    out = tmp_path / "docs"
    claims = evidence.write_frankle(res, out, command="snakemake x", wall="5 min", repo=tmp_path)
    page = (out / "README.md").read_text()
    assert len(claims) == 5 and (out / "frankle.png").is_file()
    for r in claims.itertuples():
        assert r.statement in page
    assert "| snip | shuffle | 2.05 ± 0.10 (n=2) |" in page and "10% left" in page
    assert "dense (unpruned): 1.50 ± 0.10 (n=2)" in page and "`snakemake x`" in page
    (res / "tables" / "frankle_claims.csv").unlink()
    with pytest.raises(FileNotFoundError, match="frankle_claims.csv"):
        evidence.write_frankle(res, out, command="x", wall="", repo=tmp_path)
