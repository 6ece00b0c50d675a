"""The committed evidence: a workflow run's table CSVs -> docs/reproduction/ pages with verdicts.

A reader of the repository should see, without running anything, what reproduced: for each
table a Markdown page with ours (mean ± std, n) beside the paper and the verdict of every value,
under the same rule and tolerances the HTML report uses (``spp.tables.summary``), plus how it was
made (commit, command, machine, wall time). The pages are generated from the CSVs, never edited by
hand, so a rerun after a change regenerates them:

    python -m spp.tables.evidence results/mnist docs/reproduction/lee2020-mnist --tables table1 \\
        --command "snakemake ..." --wall table1="47 min" --repo .
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from spp.report.provenance import device_summary, git_commit, package_versions
from spp.tables import formatting as F
from spp.tables import summary as S

SCHEMA = Path(__file__).resolve().parents[3] / "config" / "config.schema.yaml"

_MARK = {S.REPRODUCED: "yes", S.NOT_REPRODUCED: "**no**", S.DIVERGED: "**diverged**",
         S.NOT_RUN: "not run",
         S.NOT_COMPARABLE: "not comparable"}


def default_tolerances(schema: str | Path = SCHEMA) -> dict:
    """The summary's tolerances as the config schema defines them (the report's default)."""
    spec = yaml.safe_load(Path(schema).read_text())
    tol = spec["properties"]["figures"]["properties"]["summary"]["properties"]["tolerances"]
    return dict(tol["default"])


def table_page(name: str, summary: pd.DataFrame, about: Sequence[tuple[str, str]],
               rule: str, title: str | None = None) -> str:
    """One table's page: provenance, verdict counts, then every compared value."""
    rows = summary[summary["table"] == name]
    cells = list(dict.fromkeys(rows["cell"]))  # table order; a cell's quantities together
    rows = rows.assign(_c=[cells.index(c) for c in rows["cell"]]).sort_values("_c", kind="stable")
    counts = S.verdict_counts(rows)
    lines = [f"# {title or name}: paper versus this workflow", ""]
    lines += [f"- **{label}**: {text}" for label, text in about]
    lines += ["", "**Verdicts**: " + ", ".join(f"{v} {c}" for v, c in counts.items() if c), "",
              f"Rule: {rule}", "",
              "| cell | quantity | ours (mean ± std, n) | paper | ours − paper | reproduced |",
              "|---|---|---|---|---|---|"]
    for r in rows.itertuples():
        ours = F.fmt_mean_std(r.mean, r.std, r.n, r.diverged)
        cell = str(r.cell).replace("|", "\\|")  # ||J||_1 must not split the Markdown row
        lines.append(f"| {cell} | {S.quantity_label(r.quantity)} | {ours} "
                     f"| {F.fmt_value(r.paper)} | {F.fmt_value(r.diff)} | {_MARK[r.verdict]} |")
    return "\n".join(lines) + "\n"


FIGURES = {
    "figure1": ("Figure 1: sparsity patterns and connection sensitivity per layer, 7-layer MLPs "
                "at SG(1.0)", ("figure1.png",), ("figure1_*.pt",)),
    "figure2": ("Figure 2: (a) mean Jacobian singular value against sparsity, (b) training at "
                "90% sparsity", ("figure2a.png", "figure2b.png"), ("figure2a_*.csv",
                                                                  "figure2b_*.csv")),
}


def figure_page(name: str, about: Sequence[tuple[str, str]], images: Sequence[str]) -> str:
    """A figure's page: how it was made, then the images (no verdicts: the paper publishes
    these as plots, so they are compared by eye)."""
    lines = [f"# {FIGURES[name][0]}", ""]
    lines += [f"- **{label}**: {text}" for label, text in about]
    lines += ["", "The paper prints this figure without numbers: compare by eye.", ""]
    lines += [f"![{img}]({img})" for img in images]
    return "\n".join(lines) + "\n"


def _machine() -> str:
    dev = device_summary()
    versions = package_versions(("torch", "snakemake"))
    return (f"{dev['cpu']}, {dev['cores']} cores" + (f", {', '.join(dev['gpus'])}"
            if dev["gpus"] else ", no GPU") + f"; python {versions['python']}, torch "
            f"{versions['torch']}, snakemake {versions['snakemake']}")


def write_figures(results: str | Path, out: str | Path, figures: Sequence[str], *, command: str,
                  wall: Mapping[str, str], repo: str | Path, seeds: str = "") -> None:
    """Copy each figure's PNGs and data into ``out`` and write its page."""
    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    for f in figures:
        if f not in FIGURES:
            raise ValueError(f"unknown figure {f!r}; valid: {', '.join(FIGURES)}")
        _, images, data = FIGURES[f]
        for img in images:
            src = results / "figures" / img
            if not src.is_file():
                raise FileNotFoundError(f"{src}: {f} has not been built; run the workflow for "
                                        "it first")
            shutil.copyfile(src, out / img)
        copied = []
        for pattern in data:
            for src in sorted((results / "figures" / "data").glob(pattern)):
                if src.suffix == ".csv":
                    shutil.copyfile(src, out / src.name)
                    copied.append(f"[{src.name}]({src.name})")
        about = [("produced by", f"{git_commit(repo)}, {date}"), ("command", f"`{command}`"),
                 ("machine", _machine()), ("wall time", wall.get(f, "not recorded"))]
        if seeds:
            about.append(("seeds", seeds))
        if copied:
            about.append(("data", ", ".join(copied)))
        (out / f"{f}.md").write_text(figure_page(f, about, images))


FRANKLE_FILES = (("tables", "frankle.csv"), ("tables", "frankle_runs.csv"),
                 ("tables", "frankle_claims.csv"), ("figures", "frankle.png"))


def frankle_page(table: pd.DataFrame, claims: pd.DataFrame, about: Sequence[tuple[str, str]],
                 metric: str = "final_error") -> str:
    """Frankle et al.'s page: provenance, the five claims with their numbers, then every curve
    point (mean ± std, n seeds) by method and ablation, and the figure."""
    lines = ["# Frankle et al. 2021: the paper's claims, checked by this workflow", ""]
    lines += [f"- **{label}**: {text}" for label, text in about]
    lines += ["", "## The claims", "",
              "Checked by the workflow's rule `frankle_claims` (`spp.frankle.claims`) on the "
              "table below; a difference counts when it exceeds max(tolerance, 2 x the pooled "
              "seed std).", "",
              "| network | claim | verdict | numbers (test error, percentage points) |",
              "|---|---|---|---|"]
    for r in claims.itertuples():
        mark = "yes" if r.verdict == "reproduced" else f"**{r.verdict}**"
        lines.append(f"| {r.network} | {r.claim}. {r.statement} | {mark} | {r.evidence} |")
    lines += ["", f"## Test error at the end of training (`{metric}`, %)", ""]
    sparsities = sorted(table.loc[table.method != "dense", "sparsity"].unique())
    head = " | ".join(f"{100 * (1 - s):.3g}% left" for s in sparsities)
    for net, g in table.groupby("network", sort=False):
        dense = g[g.method == "dense"]
        if not dense.empty:
            d = dense.iloc[0]
            ours = F.fmt_mean_std(d[f"{metric}_mean"], d[f"{metric}_std"], d[f"{metric}_n"],
                                  False)
            lines.append(f"**{net}**, dense (unpruned): {ours}")
            lines.append("")
        lines += [f"| method | ablation | {head} |", "|---|---|" + "---|" * len(sparsities)]
        for (m, a), c in g[g.method != "dense"].groupby(["method", "ablation"], sort=False):
            c = c.set_index("sparsity")
            cells = [F.fmt_mean_std(c.loc[s, f"{metric}_mean"], c.loc[s, f"{metric}_std"],
                                    c.loc[s, f"{metric}_n"], False) if s in c.index else "-"
                     for s in sparsities]
            lines.append(f"| {m} | {a} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["![frankle.png](frankle.png)", ""]
    return "\n".join(lines)


def write_frankle(results: str | Path, out: str | Path, *, command: str, wall: str,
                  repo: str | Path, seeds: str = "", note: str = "") -> pd.DataFrame:
    """Copy Frankle et al.'s table, runs, claims and figure into ``out`` and write its page;
    returns the claims."""
    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder, name in FRANKLE_FILES:
        src = results / folder / name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: not built; run the workflow for "
                                    f"results/<preset>/{folder}/{name} first")
        shutil.copyfile(src, out / name)
    table, claims = pd.read_csv(out / "frankle.csv"), pd.read_csv(out / "frankle_claims.csv")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    about = [("produced by", f"{git_commit(repo)}, {date}"), ("command", f"`{command}`"),
             ("machine", _machine()), ("wall time", wall or "not recorded")]
    if seeds:
        about.append(("seeds", seeds))
    if note:
        about.append(("note", note))
    about.append(("data", ", ".join(f"[{n}]({n})" for _, n in FRANKLE_FILES[:3])
                  + ", the workflow's own tables"))
    (out / "README.md").write_text(frankle_page(table, claims, about))
    return claims


def built_title(table_md: Path) -> str | None:
    """The title the workflow gave the table (the spec's, from the config that ran), read from
    its Markdown's heading without the ``[<preset> preset]`` tag."""
    if not table_md.is_file():
        return None
    head = table_md.read_text().splitlines()[0] if table_md.stat().st_size else ""
    return re.sub(r"\s*\[[^\]]* preset\]$", "", head.removeprefix("# ")).strip() or None


def write_evidence(results: str | Path, out: str | Path, tables: Sequence[str], *, command: str,
                   wall: Mapping[str, str], repo: str | Path, seeds: str = "",
                   tolerances: Mapping | None = None) -> pd.DataFrame:
    """Copy each table's CSV into ``out`` and write its page; returns the summary rows."""
    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = {}
    for t in tables:
        src = results / "tables" / f"{t}.csv"
        if not src.is_file():
            raise FileNotFoundError(f"{src}: table {t} has not been built; run the workflow "
                                    "for it first (its target is results/<preset>/tables/"
                                    f"{t}.csv)")
        frames[t] = pd.read_csv(src)
        shutil.copyfile(src, out / f"{t}.csv")
    tolerances = dict(tolerances or default_tolerances())
    summary = S.rows_in_order(S.summarize(frames, tolerances, comparable=True), list(frames))
    rule = S.rule_text(tolerances)
    machine = _machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    for t in tables:
        about = [("produced by", f"{git_commit(repo)}, {date}"), ("command", f"`{command}`"),
                 ("machine", machine), ("wall time", wall.get(t, "not recorded"))]
        if seeds:
            about.append(("seeds", seeds))
        about.append(("data", f"[{t}.csv]({t}.csv), the workflow's own table"))
        (out / f"{t}.md").write_text(table_page(t, summary, about, rule,
                                                title=built_title(results / "tables" / f"{t}.md")))
    summary.to_csv(out / "verdicts.csv", index=False)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="results/<preset> folder of the run")
    ap.add_argument("out", help="folder for the pages, e.g. docs/reproduction/lee2020-mnist")
    ap.add_argument("--tables", nargs="*", default=[])
    ap.add_argument("--figures", nargs="*", default=[], help=f"of {', '.join(FIGURES)}")
    ap.add_argument("--command", required=True, help="the exact command that made the tables")
    ap.add_argument("--wall", nargs="*", default=[], metavar="TABLE=TIME",
                    help="measured wall time per table, e.g. table1='47 min'")
    ap.add_argument("--seeds", default="", help="seed count, said on each page")
    ap.add_argument("--repo", default=".", help="the checkout that ran it (for its commit)")
    ap.add_argument("--frankle", action="store_true",
                    help="write Frankle et al.'s page (claims, curves, figure) into OUT")
    ap.add_argument("--note", default="", help="a sentence for the Frankle page")
    a = ap.parse_args(argv)
    wall = dict(w.split("=", 1) for w in a.wall)
    if a.frankle:
        claims = write_frankle(a.results, a.out, command=a.command, wall=wall.get("frankle", ""),
                               repo=a.repo, seeds=a.seeds, note=a.note)
        for r in claims.itertuples():
            print(r.network, r.claim, r.verdict)
    if a.figures:
        write_figures(a.results, a.out, a.figures, command=a.command, wall=wall, repo=a.repo,
                      seeds=a.seeds)
    if a.tables:
        summary = write_evidence(a.results, a.out, a.tables, command=a.command, wall=wall,
                                 repo=a.repo, seeds=a.seeds)
        for t in a.tables:
            print(t, S.verdict_counts(summary[summary["table"] == t]))


if __name__ == "__main__":
    main()
