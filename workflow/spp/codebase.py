"""Which files of this repository a workflow script runs, and their digest: the `code` param of
every rule, so that editing the library code a stage uses reruns that stage and nothing else.

Snakemake reruns a `script:` job when its script changes (mtime), not when a module the script
imports does. The digest follows the script's imports statically (`ast`, no torch needed, so the
Snakefile parses with Snakemake alone): every `spp` module and every sibling module of the
script (`_common`) it imports anywhere, function bodies included, transitively, with the
`__init__.py` of each package on the way, since Python runs those too. The names `spp` exports
lazily (its `_WHERE`) count as imports of the module that defines them, where a script takes
them from `spp` (`import spp`, `from spp import score`). A module that imports a
whole package's modules by name at run time says so in `LOADS_PACKAGE`. What only decides how a
job is run, not what it computes (`NOT_RESULTS`), is left out: an edit there reruns nothing.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

LIBRARY = "spp"
NOT_RESULTS = frozenset({"spp.jobs", "_job"})  # the job runner: how a job runs, not its numbers
# Modules that import every module of a package at run time (a registry filled by decorators).
LOADS_PACKAGE = {"spp.pruning.scores": "spp.pruning"}


def script_digest(script: str | Path, library_parent: str | Path) -> str:
    """A short hash of `script` and every library file it runs (`files`)."""
    h = hashlib.sha256()
    for f in files(Path(script).resolve(), Path(library_parent).resolve()):
        h.update(str(f.name).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@cache
def files(script: Path, library_parent: Path) -> tuple[Path, ...]:
    """`script` and the files of the modules it imports, transitively, in a stable order."""
    seen: dict[str, Path] = {}
    todo: list[tuple[str | None, Path]] = [(None, script)]
    lazy = _lazy_exports(library_parent)
    while todo:
        name, path = todo.pop()
        for module in _imports(path, name, lazy):
            for m in [module, *_package_modules(LOADS_PACKAGE.get(module), library_parent)]:
                if m in seen or m in NOT_RESULTS:
                    continue
                found = _module_file(m, script.parent, library_parent)
                if found is not None:
                    seen[m] = found
                    todo.append((m, found))
    return (script, *sorted(set(seen.values()) - {script}))


def _lazy_exports(library_parent: Path) -> dict[str, str]:
    """`spp._WHERE`, read without running it: exported name -> the module that defines it."""
    init = library_parent / LIBRARY / "__init__.py"
    if not init.is_file():
        return {}
    for node in ast.walk(ast.parse(init.read_text(), filename=str(init))):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_WHERE" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return {}


def _imports(path: Path, module: str | None, lazy: dict[str, str]) -> list[str]:
    """Modules `path` imports (with their parent packages), anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    package = _package_of(path, module)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
            if any(a.name == LIBRARY for a in node.names):  # `spp.<name>` reaches every export
                names += sorted(set(lazy.values()))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is None:
                continue
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names]  # kept if a module
            if base == LIBRARY:
                names += [lazy[a.name] for a in node.names if a.name in lazy]
    out = []
    for n in names:
        parts = n.split(".")
        out += [".".join(parts[: i + 1]) for i in range(len(parts))]
    return list(dict.fromkeys(out))


def _package_of(path: Path, module: str | None) -> str | None:
    if module is None:
        return None
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, package: str | None) -> str | None:
    if not node.level:
        return node.module
    if package is None:
        return None
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _module_file(module: str, script_dir: Path, library_parent: Path) -> Path | None:
    """The file of a library module, or of a helper module beside the script (`_common`: a
    leading underscore; the scripts themselves are not modules); None for the rest."""
    parts = module.split(".")
    if parts[0] == LIBRARY:
        root = library_parent
    elif len(parts) == 1 and module.startswith("_") and (script_dir / f"{module}.py").is_file():
        root = script_dir
    else:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_modules(package: str | None, library_parent: Path) -> list[str]:
    if package is None:
        return []
    folder = library_parent.joinpath(*package.split("."))
    return [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]
