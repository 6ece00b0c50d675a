"""The verdict rule of the report's summary, checked on values whose answer is known by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from spp.tables.formatting import fmt_mean_std, fmt_std, fmt_value
from spp.tables.summary import (
    NOT_COMPARABLE,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    Tolerance,
    key_columns,
    quantities,
    summarize,
    summary_html,
    tolerance_for,
    verdict,
)


def test_two_standard_errors_decide_when_tolerance_is_zero():
    # std 0.2 over n=4 seeds: SE = 0.1, so the band is +-0.2 around the paper's 8.0.
    tol = Tolerance()
    assert verdict(8.0, 8.19, 0.2, 4, tol) == REPRODUCED
    assert verdict(8.0, 7.81, 0.2, 4, tol) == REPRODUCED
    assert verdict(8.0, 8.21, 0.2, 4, tol) == NOT_REPRODUCED
    # One seed has no standard error: only an exact match passes.
    assert verdict(8.0, 8.01, float("nan"), 1, tol) == NOT_REPRODUCED


def test_absolute_tolerance_widens_a_narrow_band():
    assert verdict(8.0, 8.3, 0.2, 4, Tolerance(abs=0.5)) == REPRODUCED
    assert verdict(8.0, 8.3, 0.2, 4, Tolerance(abs=0.25)) == NOT_REPRODUCED


def test_relative_and_log10_tolerances():
    assert verdict(10.0, 10.9, 0.0, 5, Tolerance(rel=0.1)) == REPRODUCED
    assert verdict(10.0, 11.1, 0.0, 5, Tolerance(rel=0.1)) == NOT_REPRODUCED
    # log10 = 0.5 accepts up to a factor 10**0.5 = 3.16 either way.
    assert verdict(1e3, 3.1e3, 0.0, 5, Tolerance(log10=0.5)) == REPRODUCED
    assert verdict(1e3, 3.2e2, 0.0, 5, Tolerance(log10=0.5)) == REPRODUCED
    assert verdict(1e3, 3.3e3, 0.0, 5, Tolerance(log10=0.5)) == NOT_REPRODUCED


def test_infinite_condition_number_only_matches_infinity():
    assert verdict(math.inf, math.inf, float("nan"), 5, Tolerance(log10=1)) == REPRODUCED
    assert verdict(math.inf, 1e15, 1.0, 5, Tolerance(log10=1)) == NOT_REPRODUCED


def test_missing_measurement_is_not_run_and_quick_preset_is_never_reproduced():
    assert verdict(8.0, float("nan"), float("nan"), float("nan"), Tolerance(abs=1)) == NOT_RUN
    assert verdict(8.0, 8.0, 0.0, 0, Tolerance(abs=1)) == NOT_RUN
    assert verdict(8.0, 8.0, 0.0, 2, Tolerance(abs=1), comparable=False) == NOT_COMPARABLE


def test_bad_tolerances_are_refused():
    with pytest.raises(ValueError, match="abs"):
        Tolerance(abs=-1)
    with pytest.raises(ValueError, match="allowed: abs, rel, log10"):
        tolerance_for("error", {"error*": {"absolute": 0.5}})


def test_first_matching_pattern_wins():
    tols = {"jac_*": {"log10": 0.5}, "error*": {"abs": 0.5}, "*": {"rel": 0.1}}
    assert tolerance_for("jac_cn", tols) == Tolerance(log10=0.5)
    assert tolerance_for("error_paper_protocol", tols) == Tolerance(abs=0.5)
    assert tolerance_for("os", tols) == Tolerance(rel=0.1)


def _table2() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "init": ["LDI", "LDI-AI", "VS-L"],
            "network": ["VGG16", "VGG16", "VGG16"],
            "error_mean": [8.2, 9.5, float("nan")],
            "error_std": [0.2, 0.1, float("nan")],
            "error_n": [5, 5, 0],
            "paper_error": [8.11, 7.99, 8.16],
            "os_mean": [13.0, 6.5, float("nan")],
            "os_std": [0.1, 0.1, float("nan")],
            "os_n": [5, 5, 0],
            "paper_os": [13.33, 6.43, 13.72],
            "extra_mean": [1.0, 1.0, 1.0],  # no paper value: not a quantity of the summary
        }
    )


def test_quantities_and_cell_keys_are_read_from_the_columns():
    df = _table2()
    assert quantities(df) == ["error", "os"]
    assert key_columns(df) == ["init", "network"]


def test_summarize_one_row_per_cell_and_quantity():
    tols = {"error*": {"abs": 0.5}, "os": {"rel": 0.1}}
    s = summarize({"table2": _table2()}, tols, comparable=True)
    assert len(s) == 6
    by = {(r.cell.split(",")[0], r.quantity): r for r in s.itertuples()}
    assert by[("LDI", "error")].verdict == REPRODUCED  # 0.09 off, within 0.5
    assert by[("LDI-AI", "error")].verdict == NOT_REPRODUCED  # 1.51 off
    assert by[("VS-L", "error")].verdict == NOT_RUN
    assert by[("LDI", "os")].verdict == REPRODUCED  # 0.33 off, 10% of 13.33 = 1.33
    assert by[("LDI-AI", "error")].diff == pytest.approx(9.5 - 7.99)
    assert math.isnan(by[("VS-L", "os")].diff)

    quick = summarize({"table2": _table2()}, tols, comparable=False)
    assert set(quick["verdict"]) == {NOT_COMPARABLE, NOT_RUN}


def test_summary_html_labels_a_non_comparable_preset():
    s = summarize({"table2": _table2()}, {"*": {"abs": 0.5}}, comparable=False)
    page = summary_html(s, "quick", comparable=False, rule="r")
    assert "not a reproduction" in page
    assert page.count("<tr>") == 1 + len(s)
    assert ">reproduced<" not in page
    page = summary_html(
        summarize({"table2": _table2()}, {"*": {"abs": 0.5}}, True),
        "paper",
        comparable=True,
        rule="r",
    )
    assert "not a reproduction" not in page
    assert ">reproduced<" in page


def test_numbers_print_like_the_paper():
    assert fmt_value(8.111) == "8.11"
    assert fmt_value(2.46e-07) == "2.46e-07"
    assert fmt_value(3.34e11) == "3.34e+11"
    assert fmt_value(float("inf")) == "inf"
    assert fmt_value(float("nan")) == "–"


def test_paper_layout_puts_each_cell_where_the_paper_prints_it():
    from spp.report.report_tables import paper_layout_html

    rows = []
    for init, base in (("LDI", 10.0), ("LDI-AI", 9.0)):
        for net in ("ResNet32", "VGG16"):
            for act, off in (("tanh", 0.0), ("selu", 0.5)):
                rows.append(
                    {
                        "init": init,
                        "network": net,
                        "activation": act,
                        "error_paper_protocol_mean": base + off + (net == "VGG16"),
                        "error_paper_protocol_std": 0.1,
                        "error_paper_protocol_n": 2,
                        "paper_error_paper_protocol": 20 + base + off,
                    }
                )
    page = paper_layout_html("table3", pd.DataFrame(rows), "Table 3 as run", preset="quick")
    # Columns nested network > activation in order of appearance; one row per init.
    assert page.index(">ResNet32<") < page.index(">VGG16<")
    body = page[page.index("<tbody>") :]
    ldi, ldi_ai = (r.split("</tr>")[0] for r in body.split("<tr>")[1:3])
    cells = [c.split("</span>")[0] for c in ldi.split('<span class="ours">')[1:]]
    assert [c.split("<")[0] for c in cells] == ["10.00", "10.50", "11.00", "11.50"]
    # Best (lowest) error per column in bold, ours and the paper's separately: LDI-AI everywhere.
    assert "<b>" not in ldi and ldi_ai.count("<b>") == 8
    assert "2 seeds per cell" in page
    with pytest.raises(ValueError, match="key columns"):
        paper_layout_html("table3", pd.DataFrame(rows).drop(columns="activation"), "Table 3")


def test_provenance_counts_training_devices_and_names_versions(tmp_path):
    import json

    from spp.report.provenance import collect
    from spp.tables.summary import front_page_html

    for i, dev in enumerate(["cpu", "cpu", "cuda:0"]):
        d = tmp_path / "train" / f"net{i % 2}" / f"seed{i}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"device": dev, "error": 1.0}))
    cfg = {"preset": "quick", "preset_note": "smoke test", "seeds": [0, 1],
           "data": {"source": "subset", "mirror": "data/subsets"}}  # fmt: skip
    prov = collect(cfg, {"table2": [0, 1]}, ["mnist"],
                   [str(tmp_path / "train" / "net0"), str(tmp_path / "train" / "net1")],
                   repo_dir=str(tmp_path))  # fmt: skip
    assert prov["training_devices"] == {"cpu": 2, "cuda:0": 1}
    assert prov["packages"]["torch"] and prov["packages"]["python"]
    assert prov["comparable"] is False and prov["git"] == "not a git checkout"
    page = front_page_html(prov, summarize({"table2": _table2()}, {"*": {"abs": 0.5}}, False),
                           comparable=False, rule="the rule")  # fmt: skip
    for text in ("cpu (2 runs)", "cuda:0 (1 run)", "table2: 2", "smoke test", "the rule"):
        assert text in page
    assert "not a reproduction" in page


def test_one_formatter_for_every_table():
    assert fmt_value(1234567, "params") == "1,234,567"
    assert fmt_value(0.9712, "sparsity_l1") == "0.971"
    assert fmt_std(0.97, 0.00511) == "0.01"  # the spread in the mean's notation
    assert fmt_std(2.46e-07, 9.9e-08) == "9.90e-08"
    assert fmt_mean_std(2.0, 0.1, 3) == "2.00 ± 0.10 (n=3)"
    assert fmt_mean_std(2.0, float("nan"), 1) == "2.00 (n=1)"
    assert fmt_mean_std(float("nan"), float("nan"), 0, 2) == "diverged (2 seeds)"
    assert fmt_mean_std(None, None, None) == "not run"
    assert fmt_mean_std(90.0, 0.5, 3, 1) == "90.00 ± 0.50 (n=3; 1 diverged)"


def test_front_page_lists_frankle_claims_with_their_verdicts():
    from spp.tables.summary import front_page_html

    claims = pd.DataFrame([
        {"network": "LeNet", "claim": 1, "statement": "methods beat random",
         "verdict": "reproduced", "evidence": "-1 pp"},
        {"network": "LeNet", "claim": 3, "statement": "shuffling is harmless",
         "verdict": "not reproduced", "evidence": "+2 pp"}])
    summ = summarize({"table2": _table2()}, {"*": {"abs": 0.5}}, True)
    page = front_page_html({"preset": "mnist"}, summ, True, "r", claims)
    assert "Frankle et al. 2021" in page and "3. shuffling is harmless" in page
    assert '<td class="spp-bad">not reproduced</td>' in page
    assert '<td class="spp-ok">reproduced</td>' in page
    smoke = front_page_html({"preset": "quick"}, summ, False, "r", claims)
    assert "not comparable (preset)" in smoke and "spp-ok" not in smoke.split("Frankle")[1]
    assert "Frankle" not in front_page_html({"preset": "q"}, summ, False, "r")
