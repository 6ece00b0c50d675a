"""The Snakefile parses with Snakemake alone: a controller that deploys each job's software (and
the workflow catalog's linter) has no torch. What it imports at parse time is torch-free, and the
torch-free catalogs agree with the code that builds and scores."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the Snakefile and its rule files import from the library while they parse.
PARSE_TIME = (
    "spp",
    "spp.paths",
    "spp.codebase",
    "spp.jobs",
    "spp.rule_params",
    "spp.nets.catalog",
    "spp.pruning.catalog",
    "spp.frankle.grid",
    "spp.data.specs",
    "spp.tables.experiments",
    "spp.tables.table_specs",
)
HEAVY = ("torch", "numpy", "pandas", "matplotlib", "seaborn", "scipy")


def blocker(folder: Path, blocked: tuple[str, ...]) -> dict:
    """An environment in which importing any of ``blocked`` fails, as where it is not installed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys

        class _Absent:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {set(blocked)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, _Absent())
        """))
    import os

    return {**os.environ, "PYTHONPATH": f"{folder}:{REPO / 'workflow'}"}


def test_the_modules_the_snakefile_imports_need_no_torch_numpy_or_pandas(tmp_path):
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in PARSE_TIME)
    code += "import spp.tables.experiments as X; X.Net; print('ok')\n"
    r = subprocess.run([sys.executable, "-c", code], env=blocker(tmp_path, HEAVY),
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_the_package_loads_torch_only_when_a_name_that_needs_it_is_used(tmp_path):
    code = ("import sys, spp\nassert 'torch' not in sys.modules\n"
            "spp.build_model\nassert 'torch' in sys.modules\n"
            "print(sorted(spp.__all__) == sorted(spp._WHERE) and all(getattr(spp, n) is not None "
            "for n in spp.__all__))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**blocker(tmp_path, ())})
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-3000:]


def test_every_catalogued_architecture_has_a_builder_and_every_method_a_function():
    from spp.nets import catalog as nets
    from spp.nets import lth_models, models
    from spp.pruning import catalog, scores

    assert tuple(models._BUILDERS) == nets.ARCHITECTURES
    assert tuple(sorted(lth_models.VGG_PLANS)) == nets.VGG_DEPTHS
    for m in catalog.methods():
        assert callable(scores.function(m)), m  # register() checked its options against the entry
    assert scores.function("magnitude-after-training") is scores.function("magnitude")


@pytest.mark.slow
@pytest.mark.parametrize("args", [("--lint",), ("-n", "--quiet", "rules")])
def test_snakemake_lints_and_plans_the_workflow_without_torch(tmp_path, args):
    # numpy and pandas stay: Snakemake's SLURM plugin, installed beside it here, imports them
    env = blocker(tmp_path, ("torch", "matplotlib", "seaborn", "scipy"))
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "ModuleNotFoundError" not in r.stdout + r.stderr


@pytest.mark.parametrize("arch, shape, classes, width", [
    ("mlp-7-tanh", (1, 28, 28), 10, 1.0), ("mlp-3-relu", (1, 28, 28), 10, 0.37),
    ("lenet300", (1, 28, 28), 10, 0.5), ("resnet20", (3, 32, 32), 10, 0.25),
    ("resnet14", (3, 32, 32), 10, 0.5), ("resnet56", (3, 64, 64), 200, 0.3),
])
def test_the_catalogs_parameter_count_is_the_built_networks(arch, shape, classes, width):
    from spp.nets import catalog, models

    model = models.build_model(arch, shape, classes, width=width)
    built = sum(p.numel() for p in models.prunable_parameters(model).values())
    assert catalog.prunable_count(arch, shape, classes, width) == built
    assert catalog.prunable_count("vgg16", shape, classes, width) is None  # built instead
