"""Check config files before `snakemake --configfile` reads them: one line per problem.

Snakemake loads --configfile itself, before this workflow's Snakefile runs (ConfigSettings in
its command line), so the workflow cannot shorten what it prints for a missing file (a Python
traceback) or name the line of a YAML error in one. This command can:

    python workflow/scripts/check_config.py my.yaml [more.yaml ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spp.tables.experiments import yaml_problem  # noqa: E402


def problem(path: str) -> str | None:
    """What is wrong with one config file, or None."""
    if not Path(path).is_file():
        return f"{path}: no such config file"
    return yaml_problem(path)


def main(paths: list[str]) -> int:
    problems = [p for p in map(problem, paths) if p]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
