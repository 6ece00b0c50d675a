"""What Snakemake's reproducibility machinery reaches: each rule's script runs in the environment
Snakemake deploys (proved with --sdm env-modules: a modulefile puts a second interpreter first
on PATH), and an edit to library code reruns the stages that run it, not the others."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
from spp import codebase  # noqa: E402

MODULES_INIT = Path("/usr/share/modules/init/bash")  # Debian's environment-modules
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
INIT = "results/e2e/init/cifar10-64/wrn-16-6_default_w0.0625/orthogonal"  # no data needed
SCRIPTS = REPO / "workflow" / "scripts"


def snakemake(*args, cwd: Path, snakefile: Path = REPO / "Snakefile", env=None):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
           "--configfile", str(TEST_CONFIG), "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.skipif(not MODULES_INIT.is_file(), reason="needs Debian's environment-modules")
def test_env_modules_deployment_runs_the_job_in_the_modules_interpreter(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "spp-python").write_text(f"#%Module1.0\nprepend-path PATH {venv}/bin\n")
    import os

    env = {**os.environ, "BASH_ENV": str(MODULES_INIT), "MODULEPATH": str(modules)}
    r = snakemake("--directory", str(tmp_path), "--sdm", "env-modules",
                  "--config", 'envmodules=["spp-python"]', "--", INIT, cwd=tmp_path, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    log = (tmp_path / INIT.replace("results/e2e/", "results/e2e/logs/", 1)).with_suffix(".log")
    log = log.with_name("orthogonal.log")
    text = log.read_text()
    assert f"python {venv}/bin/python (prefix {venv})" in text, text


def copy_of_the_workflow(tmp_path: Path) -> Path:
    root = tmp_path / "wf"
    root.mkdir()
    for item in ("Snakefile", "workflow", "config", "envs", "report", "profiles", ".test", "data"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(
            src, root / item, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                 if src.is_dir() else {}))
    return root


def rerun_reason(root: Path) -> str:
    """Why a dry run would rerun INIT ("" when it is up to date). A dry run, not
    `--list-changes params`: Snakemake 9.27 lists every recorded output there, changed or not."""
    r = snakemake("-n", INIT, cwd=root, snakefile=root / "Snakefile")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    return "" if "Nothing to be done" in out else out


@pytest.mark.slow
def test_an_edit_to_library_code_reruns_the_stages_that_run_it(tmp_path):
    root = copy_of_the_workflow(tmp_path)
    r = snakemake(INIT, cwd=root, snakefile=root / "Snakefile")
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert rerun_reason(root) == ""

    plotting = root / "workflow" / "spp" / "report" / "plotting.py"
    plotting.write_text(plotting.read_text() + "\n# an edit to the report code\n")
    assert rerun_reason(root) == ""  # the init stage does not run it

    init_code = root / "workflow" / "spp" / "nets" / "initializers.py"
    init_code.write_text(init_code.read_text() + "\n# an edit to the init code\n")
    reason = rerun_reason(root)
    assert "params have changed since last execution" in reason and "init" in reason, reason


def test_the_training_stage_runs_the_training_code_and_not_the_report_code():
    library = REPO / "workflow"
    train = {f.relative_to(library).as_posix()
             for f in codebase.files(SCRIPTS / "train.py", library)}
    table = {f.relative_to(library).as_posix()
             for f in codebase.files(SCRIPTS / "aggregate.py", library)}
    assert {"spp/train/train_loop.py", "spp/train/training.py", "spp/pruning/masks.py",
            "scripts/_common.py"} <= train
    assert "spp/report/plotting.py" not in train and "spp/tables/aggregate.py" not in train
    assert "spp/train/train_loop.py" not in table and "spp/tables/aggregate.py" in table
    # the registry imports every pruning module at run time: each one is code of the stage
    assert {f"spp/pruning/{p.name}" for p in (library / "spp" / "pruning").glob("*.py")} <= train
    assert "spp/jobs.py" not in train  # how a job runs, not what it computes


def test_the_digest_follows_the_code_not_the_comments_elsewhere(tmp_path):
    lib = tmp_path / "lib"
    (lib / "spp" / "a").mkdir(parents=True)
    (lib / "scripts").mkdir()
    (lib / "spp" / "__init__.py").write_text("")
    (lib / "spp" / "a" / "__init__.py").write_text("")
    (lib / "spp" / "a" / "used.py").write_text("from . import helper\n")
    (lib / "spp" / "a" / "helper.py").write_text("X = 1\n")
    (lib / "spp" / "a" / "unused.py").write_text("Y = 1\n")
    script = lib / "scripts" / "s.py"
    script.write_text("def f():\n    from spp.a.used import helper\n")
    before = codebase.script_digest(script, lib)
    (lib / "spp" / "a" / "unused.py").write_text("Y = 2\n")
    codebase.files.cache_clear()
    assert codebase.script_digest(script, lib) == before
    (lib / "spp" / "a" / "helper.py").write_text("X = 2\n")  # reached through a relative import
    codebase.files.cache_clear()
    assert codebase.script_digest(script, lib) != before


def test_every_rule_tracks_the_code_of_its_own_script_and_declares_its_software():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        for block in re.split(r"\n\s*rule ", text)[1:]:
            name = block.split(":", 1)[0]
            script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+\.py)"', block)
            if name == "all" or script is None:
                assert "run:" not in block and "shell:" not in block, f"rule {name}"
                continue
            assert f'code=script_code("{script.group(1)}")' in block, f"rule {name}"
            assert "conda:\n" in block and "envmodules:\n" in block, f"rule {name}"


@pytest.mark.slow
def test_the_workflow_runs_as_a_module_of_another_workflow(tmp_path):
    """README's module recipe, with a local path: the other project's config holds only what it
    changes (the rest is this workflow's defaults), its rules carry a prefix."""
    (tmp_path / "config.yaml").write_text(TEST_CONFIG.read_text())
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        f'module spp:\n    snakefile:\n        "{REPO / "Snakefile"}"\n'
        "    config:\n        config\n\n\n"
        "use rule * from spp as spp_*\n"
    )
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", INIT]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "rule spp_init:" in r.stdout + r.stderr
    assert sorted(p.name for p in (tmp_path / INIT).glob("seed*")) == ["seed0.pt", "seed1.pt"]


@pytest.mark.slow
def test_every_stage_runs_in_its_own_interpreter_to_the_same_tables(tmp_path):
    """warm_start=false: each job a fresh `python` of its script, as under any --sdm and on every
    SLURM node. A script that leans on a module the warm server happened to import fails only
    here; the tables must be the warm run's, byte for byte."""
    tables = {}
    for mode, extra in (("warm", ()), ("fresh", ("--config", "warm_start=false"))):
        workdir = tmp_path / mode
        workdir.mkdir()
        r = snakemake("--directory", str(workdir), "--cores", "2", *extra, cwd=workdir)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        folder = workdir / "results" / "e2e" / "tables"
        tables[mode] = {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}
    assert len(tables["warm"]) >= 6 and tables["fresh"] == tables["warm"]


def _imported(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                   else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for m in modules:
            parts = m.split(".")
            names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def _spp_chains(tree) -> set[str]:
    """Every dotted name `spp.a.b...` the code uses as an attribute chain."""
    chains = set()
    for node in ast.walk(tree):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if parts and isinstance(node, ast.Name) and node.id == "spp":
            chains.add(".".join(["spp", *reversed(parts)]))
    return chains


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_a_script_imports_every_spp_module_it_uses(script):
    """In its own interpreter (any --sdm, every SLURM job) a script has only what it imports; the
    warm server imports more, so a missing import fails only there (score.py did)."""
    import importlib.util

    tree = ast.parse((SCRIPTS / script).read_text())
    imported = _imported(tree)
    missing = []
    for chain in _spp_chains(tree):
        parts = chain.split(".")
        for i in range(len(parts), 1, -1):  # the longest prefix that is a module
            module = ".".join(parts[:i])
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # a name inside a module, not a submodule
                found = False
            if found:
                if module not in imported:
                    missing.append(f"{chain} needs `import {module}`")
                break
    assert not missing, missing
