"""The fault-injection suite (benchmarks/faults.py), reduced: each kind of fault it injects, on
real `snakemake` runs, must hold; the full run's figures go to docs/reliability.md."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import faults  # noqa: E402

pytestmark = pytest.mark.slow


def failures(result: dict, ok) -> list[dict]:
    return [t for t in result["trials"] if not ok(t)]


def test_malformed_configs_are_refused_before_any_job_in_three_lines_naming_the_key(tmp_path):
    r = faults.malformed_configs(tmp_path)
    assert r["n"] == 20 and r["held"], failures(
        r, lambda t: t["refused"] and t["no_job_ran"] and t["lines"] <= 3 and t["names_key"])


def test_a_full_disk_leaves_no_torn_file_and_says_which_file(tmp_path):
    r = faults.full_disk(tmp_path)
    assert r["held"], r["trials"]


def test_a_killed_training_job_resumes_to_the_same_bytes(tmp_path):
    r = faults.kill_training(tmp_path, 2, random.Random(1))
    assert r["killed_in_flight"] >= 1 and r["held"], r["trials"]


def test_a_damaged_file_is_named_by_the_job_reading_it_and_no_table_uses_it(tmp_path):
    clean, wall = faults.clean_e2e(tmp_path)
    r = faults.damaged_files(tmp_path, clean, ("garbage",))
    assert {t["stage"] for t in r["trials"]} == set(faults.STAGES)
    assert r["held"], failures(r, lambda t: t["failed"] and t["named"]
                               and t["tables_clean_or_absent"] and t["last_good_kept"])
    # the same clean run also serves one SIGKILL of the whole Snakemake tree, then a rerun
    k = faults.kill_tree(tmp_path, clean, wall, 1, random.Random(2))
    assert k["held"], k["trials"]
