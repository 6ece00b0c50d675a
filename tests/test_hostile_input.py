"""Input a hostile or careless user gives (issue 25): a preset name that leaves results/, config
files Snakemake cannot read, a training value changed under a checkpoint, a pickle payload, and
diverged seeds. Each is refused or shown before it can do harm, naming what is wrong."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import spp.atomic
import torch
import yaml
from spp.atomic import save_tensors
from spp.tables import aggregate as A
from spp.train.stacked import train_stacked
from spp.train.training import train
from test_aggregate import PAPER, write_seed
from test_train_loop import CFG, SEEDS, _data, _masks, _models
from test_workflow import REPO, snakemake

SCHEMA = yaml.safe_load((REPO / "config" / "config.schema.yaml").read_text())


# ------------------------------------------------------------- (a) names that become folders


@pytest.mark.parametrize("preset", ["..", ".", ".hidden", "a/b", "~", "a\x00b", "a" * 65, ""])
def test_a_preset_that_is_not_one_folder_name_under_results_is_refused(preset):
    """`preset=..` put results/../data/... into the repository's own folders."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(preset, SCHEMA["properties"]["preset"])


@pytest.mark.parametrize("preset", ["quick", "paper", "e2e", "my-run.2", "a" * 64])
def test_ordinary_preset_names_still_pass(preset):
    jsonschema.validate(preset, SCHEMA["properties"]["preset"])


def test_preset_dot_dot_stops_snakemake_before_any_job(tmp_path):
    r = snakemake("-n", "--nolock", "--directory", str(tmp_path), "--config", "preset=..")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "preset: '..'" in out, out[-3000:]
    assert "Job stats" not in out and "results/../" not in out


def test_an_activation_of_a_frankle_network_cannot_be_a_path():
    """It becomes part of a model folder's name (arch_activation_w...)."""
    item = SCHEMA["properties"]["frankle"]["properties"]["networks"]["items"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("../x", item["properties"]["activation"])


# ------------------------------------------------------- (b) config files Snakemake reads


CHECK = [sys.executable, str(REPO / "workflow" / "scripts" / "check_config.py")]


def test_snakemake_reads_a_configfile_before_the_workflow_runs(tmp_path):
    """Why (b) is not fixed in the Snakefile: with a missing --configfile, a Snakefile's first
    line never runs (Snakemake's ConfigSettings loads the file first)."""
    marker = tmp_path / "ran"
    snakefile = f"open({str(marker)!r}, 'w').close()\nrule a:\n  shell: 'true'\n"
    (tmp_path / "Snakefile").write_text(snakefile)
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--snakefile",
                        str(tmp_path / "Snakefile"), "--configfile", str(tmp_path / "nope.yaml")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "nope.yaml" in r.stdout + r.stderr
    assert not marker.exists()


def test_check_config_names_a_missing_file_and_the_line_of_a_yaml_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: x\ntable1:\n\tgammas: [1]\n")  # a tab indents line 3
    r = subprocess.run([*CHECK, str(bad), str(tmp_path / "nope.yaml")], capture_output=True,
                       text=True, timeout=60)
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 2, r.stderr
    assert lines[0].startswith(f"{bad}:3:") and "invalid YAML" in lines[0]
    assert lines[1] == f"{tmp_path / 'nope.yaml'}: no such config file"
    ok = subprocess.run([*CHECK, str(REPO / ".test" / "config" / "config.yaml")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and not ok.stderr


# ---------------------------------------------- (c) a training value changed under a checkpoint


def test_a_changed_lr_names_the_cell_and_the_command_removing_its_checkpoint(tmp_path):
    """The message was a screenful of two configs asking to delete files by hand."""
    cell = tmp_path / "train" / "cell"
    ckpt = cell.with_name("cell.checkpoint.ckpt")
    other = cell.with_name("other.checkpoint.ckpt")
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another cell's")
    data, cfg = _data(), dataclasses.replace(CFG, iterations=20)
    train_stacked(_models(), _masks(_models()), data, cfg, SEEDS, checkpoint_path=ckpt,
                  log=lambda _: None)
    with pytest.raises(ValueError) as err:
        train_stacked(_models(), _masks(_models()), data, dataclasses.replace(cfg, lr=0.05),
                      SEEDS, checkpoint_path=ckpt, log=lambda _: None)
    lines = str(err.value).splitlines()
    assert len(lines) == 2, str(err.value)
    assert "lr: 0.1 -> 0.05" in lines[0] and str(cell) in lines[0]
    assert lines[1].endswith(f"rm {ckpt}")
    subprocess.run(lines[1].split(": ", 1)[1], shell=True, check=True)
    assert not ckpt.exists() and other.read_bytes() == b"another cell's"


def test_a_one_seed_jobs_checkpoint_names_its_seed_folder(tmp_path):
    seed_dir = tmp_path / "cell" / "seed3"
    seed_dir.mkdir(parents=True)
    ckpt = seed_dir / "checkpoint.ckpt"
    model, data = _models()[0], _data()
    cfg = dataclasses.replace(CFG, iterations=20, seed=SEEDS[0])
    train(model, None, data, cfg, checkpoint_path=ckpt, log=lambda _: None)
    with pytest.raises(ValueError, match=r"batch_size: 40 -> 20") as err:
        train(_models()[0], None, data, dataclasses.replace(cfg, batch_size=20),
              checkpoint_path=ckpt, log=lambda _: None)
    assert str(seed_dir) in str(err.value) and str(err.value).endswith(f"rm {ckpt}")


# ------------------------------------------------------------------ (d) a pickle payload


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_payload_is_refused_naming_the_file(tmp_path):
    """torch's refusal names no file (and advises weights_only=False)."""
    evil = tmp_path / "init" / "seed0.pt"
    evil.parent.mkdir()
    torch.save({"w": _Payload()}, evil)
    with pytest.raises(ValueError) as err:
        spp.atomic.load_tensors(evil)
    text = str(err.value)
    assert text.startswith(f"{evil}: refused") and "posix.system" in text
    assert "weights_only=False" not in text and len(text.splitlines()) == 1


def test_a_pickle_payload_as_a_checkpoint_is_refused_naming_it(tmp_path):
    ckpt = tmp_path / "cell.checkpoint.ckpt"
    with open(ckpt, "wb") as f:
        pickle.dump({"format": _Payload()}, f)
    with pytest.raises(ValueError) as err:
        train(_models()[0], None, _data(), dataclasses.replace(CFG, iterations=20),
              checkpoint_path=ckpt, log=lambda _: None)
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{ckpt}: ") and lines[1].endswith(f"rm {ckpt}")


@pytest.mark.parametrize("damage", [b"", b"\x00garbage" * 50, "half"],
                         ids=["empty", "garbage", "truncated"])
def test_a_truncated_or_garbage_tensor_file_is_named(tmp_path, damage):
    f = tmp_path / "seed0.pt"
    save_tensors({"w": torch.ones(100)}, f)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2] if damage == "half" else damage)
    with pytest.raises(ValueError, match=rf"^{f}: (truncated or damaged|refused)"):
        spp.atomic.load_tensors(f)


# ------------------------------------------------------------------------ (e) diverged seeds


def test_a_diverged_seed_with_an_error_is_not_averaged_in(tmp_path):
    """A seed that diverged after its first evaluation keeps that evaluation's error (90%): it
    was averaged with the seeds that trained, and the mean looked like a result."""
    run = None
    for s, (err, div) in enumerate([(10.0, False), (12.0, False), (90.0, True)]):
        run = write_seed(tmp_path, s, 0.0, 0.0)
        (Path(run["train"]) / f"seed{s}" / "metrics.json").write_text(json.dumps(
            {"error": err, "error_paper_protocol": err, "final_error": err, "diverged": div}))
    run["seeds"] = [0, 1, 2]
    rows = [{"keys": {"loss": "GT", "supervised": True, "K": 7},
             "paper_key": ["GT", "K=7"], "runs": {"main": run}}]
    df = A.build_table("table4", rows, A.load_paper(PAPER), preset="test")
    row = df.iloc[0]
    assert row["error_mean"] == 11.0 and row["error_n"] == 2 and row["diverged_n"] == 1
    assert "11.00 ± 1.41 (n=2; 1 diverged)" in A.to_markdown(df)


def test_a_diverged_frankle_run_is_counted_not_averaged():
    import pandas as pd
    from spp.frankle.runs import aggregate

    runs = pd.DataFrame([{"network": "N", "method": "snip", "ablation": "none", "sparsity": 0.9,
                          "seed": s, "error": e, "diverged": d}
                         for s, (e, d) in enumerate([(10.0, False), (12.0, False), (90.0, True)])])
    row = aggregate(runs).iloc[0]
    assert row["error_mean"] == 11.0 and row["error_n"] == 2 and row["diverged_runs"] == 1
