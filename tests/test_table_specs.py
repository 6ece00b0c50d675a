"""One spec per table (spp.tables.table_specs): every part of the workflow that knows a table reads
it, and each table's other pieces (config block, paper values, caption) exist beside it."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate as schema_validate
from spp.tables import experiments as X
from spp.tables import table_specs as T

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "config" / "config.schema.yaml").read_text())


def quick() -> dict:
    """The quick preset with the schema's defaults filled in, as the Snakefile sees it."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    schema_validate(cfg, str(REPO / "config" / "config.schema.yaml"))
    return cfg


QUICK = quick()
PAPER = pd.read_csv(REPO / "config" / "paper_results.csv")


@pytest.mark.parametrize("name", list(T.SPECS))
def test_each_table_has_its_config_block_paper_values_and_caption(name):
    assert name in SCHEMA["properties"] and name in QUICK
    assert (PAPER["table"] == name).any()
    # The caption as Snakemake renders it (Jinja, no loader) for this table's rules.
    import jinja2

    source = (REPO / "report" / "tables.rst").read_text()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    sm = SimpleNamespace(params=SimpleNamespace(table=name), config={"preset": "quick"})
    caption = env.from_string(source).render(snakemake=sm)
    title = "Figure 3" if name == "figure3" else name.replace("table", "Table ")
    assert caption.startswith(f"**{title}** of Lee et al."), caption[:80]
    assert "Preset: ``quick``" in caption and caption.count("**Table") <= 1


@pytest.mark.parametrize("name", list(T.SPECS))
def test_layout_and_curves_name_what_the_rows_have(name):
    """The paper layout shows only quantities the table aggregates, and both it and the
    training-curve panels are keyed by columns the table's rows carry."""
    s = T.spec(name)
    for q, _ in s.layout.values:
        assert any(fnmatch.fnmatch(q, p) for p in s.quantities), (name, q)
    rows = X.expand(QUICK)[name]
    keys = set(rows[0]["keys"])
    assert set(s.layout.rows) | set(s.layout.cols) <= keys
    panels, line = s.curves
    assert set(panels) <= keys and (line in keys or line == "role")
    needs = {n for r in rows for need in r["needs"].values() for n in need}
    assert ("signal" in needs) == s.signal


def test_titles_come_from_the_config_that_ran():
    cfg = quick()
    assert "90%" in T.table_title("table2", cfg)
    cfg["table2"]["sparsity"] = 0.8
    assert "80%" in T.table_title("table2", cfg) and "90%" not in T.table_title("table2", cfg)
    assert T.follows_paper("table2", {"sparsity": 0.9})
    assert not T.follows_paper("table2", cfg["table2"])


def test_an_unknown_table_is_named():
    with pytest.raises(ValueError, match="unknown table 'table9'; allowed: table1, table2"):
        T.spec("table9")
