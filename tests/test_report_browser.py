"""The HTML report as a reader sees it: rendered in headless Chromium, no script errors, every
table and figure present, screenshots kept for a human to look at.

The report is built from a reduced quick preset (one seed, tiny networks, a few iterations) with
the repository's Snakefile in a temporary working directory, so the test exercises the real
rules, scripts and `snakemake --report` end to end. Screenshots go to $SPP_SCREENSHOT_DIR when
set (CI artifacts), else into pytest's temporary folder. Skipped only when no Chromium is
installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
# Console messages Chromium logs with --enable-logging=stderr look like
#   [..:INFO:CONSOLE:12] "Uncaught ReferenceError: x is not defined", source: file:///... (12)
# (older versions: CONSOLE(12)).
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)?\] \"(?P<msg>.*)\", source: (?P<src>\S*)")
ERROR_WORDS = ("Uncaught", "Error", "error", "Failed")

# Small enough that the whole workflow runs in a minute or two on 2 cores, but with every table,
# every figure, the training curves and the summary.
REDUCED = {
    "seeds": [0],
    "scoring": {"batch_size": 100, "max_examples": 200},
    "signal": {"batch_size": 20, "max_examples": 20},
    "isometry": {"steps": 5, "lr": 0.1},
    "training": {
        "mnist": {"iterations": 20, "batch_size": 50, "lr_decay_every": 15, "eval_every": 10},
        "cifar10": {"iterations": 4, "batch_size": 16, "lr_decay_every": 3, "eval_every": 2},
    },
    "table1": {"gammas": [0.01, 10.0]},
    "table2": {
        "rows": ["LDI", "LDI-AI"],
        "columns": [{"name": "ResNet32", "arch": "resnet8", "width": 0.125, "dataset": "cifar10"}],
        "unsupervised_row": {"columns": ["ResNet32"]},
    },
    "table3": {
        "networks": [{"name": "ResNet32", "arch": "resnet8", "width": 0.125}],
        "activations": ["tanh"],
    },
    "table4": {
        "depths": [3],
        "losses": ["supervised", "unif"],
        "jacobian_losses": {"losses": ["jac-l1"], "depths": [3]},
    },
    "table5": {"rows": [{"prune": "mnist", "train": "mnist"}]},
    "figure3": {
        "base": {"name": "ResNet20 (dense)", "arch": "resnet8", "width": 0.125},
        "variants": [{"name": "Equivalent 1 (wider)", "arch": "resnet8", "width": 0.25}],
    },
    "frankle": {"enabled": False},
    "figures": {
        "scoring_examples": 200,
        "jacobian_examples": 20,
        "figure1": {"sparsities": [0.5, 0.9]},
        "figure2": {
            "sparsities": [0.0, 0.9],
            "isometry": {"steps": 5, "lr": 0.1},
            "training": {
                "iterations": 20,
                "batch_size": 50,
                "lr_decay_every": 15,
                "eval_every": 10,
            },  # fmt: skip
        },
    },
}


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def render(page: Path, out: Path, width: int = 1400, height: int = 1000) -> tuple[str, list[str]]:
    """Screenshot ``page`` to ``out`` and return (DOM after scripts ran, console messages)."""
    browser = _browser()
    assert browser, "no Chromium found"
    profile = out.parent / f".profile-{out.stem}"
    common = [
        browser,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=5000",  # let React render before the snapshot
    ]
    url = page.resolve().as_uri()
    shot = subprocess.run(
        [*common, f"--screenshot={out}", url], capture_output=True, text=True, timeout=120
    )
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    console = [
        f"{m['msg']} ({m['src']})"
        for log in (shot.stderr, dom.stderr)
        for m in CONSOLE.finditer(log)
    ]
    assert out.is_file(), f"no screenshot written: {shot.stderr[-2000:]}"
    return dom.stdout, console


def console_errors(console: list[str]) -> list[str]:
    return [c for c in console if any(w in c for w in ERROR_WORDS)]


needs_browser = pytest.mark.skipif(_browser() is None, reason="Chromium is not installed")


@needs_browser
def test_harness_sees_script_errors_and_rendered_dom(tmp_path):
    # The checks below must be able to fail: a page with a script error is caught, and the DOM
    # returned is the one after scripts ran, not the source.
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><div id='x'>static</div><script>"
        "document.getElementById('x').textContent = 'rendered-by-script';"
        "undefinedFunction();</script></body></html>"
    )
    dom, console = render(page, tmp_path / "broken.png", 400, 300)
    assert "rendered-by-script" in dom
    assert any("Uncaught ReferenceError" in c for c in console_errors(console))
    assert (tmp_path / "broken.png").read_bytes()[:4] == b"\x89PNG"


def _merge(base: dict, override: dict) -> dict:
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def _snakemake(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    cmd = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(workdir), "--configfile", str(workdir / "config.yaml")),
        *args,
    ]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> Path:
    """report.html of a reduced quick preset, built with the repository's Snakefile in a
    temporary working directory (results, .snakemake and the report stay there)."""
    work = tmp_path_factory.mktemp("report")
    cfg = _merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), REDUCED)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = _snakemake(work, "--cores", "2")
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    rep = _snakemake(work, "--report", str(work / "report.html"), timeout=600)
    assert rep.returncode == 0, (rep.stdout + rep.stderr)[-5000:]
    return work / "report.html"


def _shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("SPP_SCREENSHOT_DIR") or tmp_path / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _with_view(report: Path, dest: Path, script: str) -> Path:
    """A copy of the report that opens one view after load (the report has no URL routing)."""
    html = report.read_text()
    hook = f"<script>window.addEventListener('load', () => setTimeout(() => {{{script}}}, 300));"
    head, sep, tail = html.rpartition("</body>")  # the last one: scripts contain the word too
    assert sep, "report has no </body>"
    dest.write_text(head + hook + "</script></body>" + tail)
    return dest


# What a reader's clicks do: the result's description (caption) in the menu, its view on the right.
OPEN_RESULT = (
    "const p = Object.keys(results).find(k => k.endsWith('{name}'));"
    "const kind = p.endsWith('.html') ? 'html' : 'img';"
    "app.showResultInfo(p);"
    "setTimeout(() => app.setView({{content: kind, contentPath: results[p].data_uri,"
    " resultPath: p}}), 200);"
)


@needs_browser
@pytest.mark.slow
def test_quick_report_renders_with_every_table_and_figure(quick_report, tmp_path):
    shots = _shots_dir(tmp_path)
    dom, console = render(quick_report, shots / "report_front.png", 1600, 1400)
    assert not console_errors(console), console_errors(console)

    # Front page: provenance, the verdict rule, and the summary table with a row per value.
    assert "spp-summary" in dom
    for text in ("Preset", "Packages", "torch", "Seeds per table", "Training devices", "Rule:"):
        assert text in dom, f"front page lacks {text!r}"
    assert "not a reproduction" in dom and "not comparable" in dom
    # A quick preset never claims reproduction: no cell carries the "reproduced" verdict class.
    assert not re.search(r'class="[^"]*spp-ok', dom)
    rows = re.findall(r"<td class=\"l\">Table [1-5]</td>", dom)
    assert len(rows) >= 5, "summary table has too few rows"

    # Every table (paper layout and CSV) and every figure is embedded in the report.
    names = set(re.findall(r"\"([\w./-]+\.(?:png|svg|html|csv))\"", dom))
    basenames = {Path(n).name for n in names}
    expected = {
        *(f"table{i}_paper_layout.html" for i in range(1, 6)),
        *(f"table{i}.csv" for i in range(1, 6)),
        "figure1.png", "figure2a.png", "figure2b.png", "figure3.png", "summary.html",
        *(f"training_table{i}.png" for i in range(1, 6)),
    }  # fmt: skip
    assert expected <= basenames, f"missing from the report: {sorted(expected - basenames)}"

    # Open the views a reader clicks first; each must render without script errors.
    for name in ("figure1.png", "figure2a.png", "table2_paper_layout.html", "summary.html"):
        page = _with_view(quick_report, tmp_path / f"view_{name}.html",
                          OPEN_RESULT.format(name=name))  # fmt: skip
        dom, console = render(page, shots / f"report_{name.replace('.', '_')}.png", 1600, 1200)
        assert not console_errors(console), (name, console_errors(console))
        tag = "<iframe" if name.endswith(".html") else "<img"
        assert tag in dom and "data:" in dom, f"{name} view did not open"
